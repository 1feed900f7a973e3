//! One file per verb. `dispatch` hands each parsed command to its verb;
//! every verb gets the [`Env`] of this invocation.

mod attach;
mod create;
mod delete;
mod exec;
mod features;
mod gc;
mod images;
mod inspect;
mod kill;
mod list;
mod load;
mod logs;
mod network;
mod pause;
mod port;
mod ps;
mod resume;
mod rm;
mod rmi;
mod run;
mod start;
mod state;
mod stop;
mod update;

use anyhow::{bail, Context, Result};

use crate::cli::{Cli, Command, GlobalOpts};
use crate::container::{network::Host, Ctx};
use crate::oci::StateRoot;

/// What every verb works with: the global flags and the state root.
pub struct Env {
    pub global: GlobalOpts,
    pub state: StateRoot,
}

impl Env {
    /// The containers' context: libcontainer and minirun-net on this host.
    pub fn ctx(&self) -> Ctx {
        let root = self.state.path().to_path_buf();
        Ctx {
            engine: Box::new(self.state.clone()),
            net: Box::new(Host {
                root: root.clone(),
                data_root: self.global.data_root.clone(),
            }),
            root,
            data_root: self.global.data_root.clone(),
        }
    }
}

/// Runs the command; its result is the process's exit code.
pub fn dispatch(cli: Cli) -> Result<u8> {
    let state = StateRoot::open(&cli.global.root)?.with_systemd(cli.global.systemd_cgroup);
    let env = Env {
        global: cli.global,
        state,
    };
    let Some(command) = cli.command else {
        bail!("no command given; see minirun --help");
    };
    match command {
        Command::Create(a) => create::run(&env, &a),
        Command::Start(a) => start::run(&env, &a.id),
        Command::State(a) => state::run(&env, &a.id),
        Command::Kill(a) => kill::run(&env, &a),
        Command::Delete(a) => delete::run(&env, &a),
        Command::Pause(a) => pause::run(&env, &a.id),
        Command::Resume(a) => resume::run(&env, &a.id),
        Command::Update(a) => update::run(&env, &a),
        Command::List(a) => list::run(&env, &a),
        Command::Run(a) => run::run(&env, &a),
        Command::Load(a) => load::run(&env, &a),
        Command::Images => images::run(&env),
        Command::Rmi(a) => rmi::run(&env, &a),
        Command::Ps(a) => ps::run(&env, &a),
        Command::Features => features::run(),
        Command::Logs(a) => logs::run(&env, &a),
        Command::Exec(a) => exec::run(&env, &a),
        Command::Attach(a) => attach::run(&env, &a),
        Command::Stop(a) => stop::run(&env, &a),
        Command::Rm(a) => rm::run(&env, &a),
        Command::Inspect(a) => inspect::run(&env, &a),
        Command::Port(a) => port::run(&env, &a),
        Command::Gc => gc::run(&env),
        Command::Network(cmd) => network::run(&env, cmd),
    }
}

/// Guard against CVE-2019-5736 before a container can see this process
/// (see [`crate::seal`]).
pub fn seal_self() -> Result<()> {
    crate::seal::ensure_sealed().context("cannot re-execute minirun from a read-only or sealed copy")
}
