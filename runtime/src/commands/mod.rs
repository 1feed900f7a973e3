//! One file per verb. `dispatch` hands each parsed command to its verb;
//! every verb gets the [`Env`] of this invocation.

mod attach;
mod commit;
mod cp;
mod create;
mod delete;
mod diff;
mod events;
mod exec;
mod exec_opts;
mod export;
mod features;
mod format;
mod gc;
mod image;
mod images;
mod inspect;
mod kill;
mod list;
mod load;
mod login;
mod logs;
mod network;
mod pause;
mod port;
mod prune;
mod ps;
mod ps_docker;
mod pull;
mod rename;
mod restart;
mod resume;
mod rm;
mod rmi;
mod rootfs;
mod run;
mod run_flags;
mod save;
mod start;
mod state;
mod stats;
mod stop;
mod system;
mod tag;
mod top;
mod update;
mod volume;
mod wait;

use anyhow::{bail, Context, Result};

pub use inspect::network_id;

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

impl Env {
    /// The container a runc verb that docker has too (`kill`, `pause`,
    /// `resume`/`unpause`, `start`) means: an exact id first, as runc (an
    /// engine's "t1" never reaches "t10"); else the name or unique id prefix
    /// of a container made from an image, as docker. The second value says
    /// which.
    pub fn resolve_shared(&self, wanted: &str) -> Result<(String, bool)> {
        if let Ok(id) = self.state.exact(wanted) {
            return Ok((id, false));
        }
        match self.ctx().resolve(wanted) {
            Ok(r) => Ok((r.id, true)),
            Err(e) if e.to_string().contains("ambiguous") => Err(e),
            Err(_) => bail!("container \"{wanted}\" does not exist"),
        }
    }
}

/// Runs `verb` on every container the user named, as docker's `rm` and
/// `stop` do: each one done is printed as given, each failure reported (in
/// the user's words) without stopping the others; 1 if any failed.
pub fn each_container(
    env: &Env,
    ctx: &crate::container::Ctx,
    wanted: &[String],
    mut verb: impl FnMut(&str) -> Result<()>,
) -> Result<u8> {
    let mut failed = 0;
    for c in wanted {
        let id = ctx.resolve(c).map(|r| r.id).unwrap_or_default();
        match as_named(verb(c), &id, c) {
            Ok(()) => println!("{c}"),
            Err(e) => {
                crate::logging::report_error(&env.global, &e);
                failed += 1;
            }
        }
    }
    Ok(u8::from(failed > 0))
}

/// An error that ends minirun with its own exit code rather than 1.
#[derive(Debug)]
pub struct ExitCodeError {
    pub code: u8,
    pub error: anyhow::Error,
}

impl std::fmt::Display for ExitCodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for ExitCodeError {}

/// Docker's exit codes for `run` and `exec`: 127 when the command is not
/// found, 126 when it cannot be run, `otherwise` for minirun's own errors
/// (docker run: 125).
fn with_exit_code(e: anyhow::Error, otherwise: u8) -> anyhow::Error {
    if e.downcast_ref::<ExitCodeError>().is_some() {
        return e;
    }
    let msg = format!("{e:#}");
    let code = if msg.contains("executable file not found")
        || (msg.contains("no such file or directory") && msg.contains("exec: "))
    {
        127
    } else if msg.contains("exec: ") && msg.contains("permission denied") {
        126
    } else {
        otherwise
    };
    ExitCodeError { code, error: e }.into()
}

/// An error about container `id` in the words the user typed (`wanted`): a
/// name they gave, not an id they never saw.
pub fn as_named<T>(result: Result<T>, id: &str, wanted: &str) -> Result<T> {
    result.map_err(|e| match format!("{e:#}") {
        msg if !id.is_empty() && id != wanted && msg.contains(id) => anyhow::anyhow!(msg.replace(id, wanted)),
        _ => e,
    })
}

/// Runs the command; its result is the process's exit code.
pub fn dispatch(mut cli: Cli) -> Result<u8> {
    // as runc: relative roots are taken from where minirun was started, not
    // from the bundle directory libcontainer enters
    for dir in [&mut cli.global.root, &mut cli.global.data_root] {
        *dir = std::path::absolute(&*dir).with_context(|| format!("invalid directory {}", dir.display()))?;
    }
    let state = StateRoot::open(&cli.global.root)?
        .with_systemd(cli.global.systemd_cgroup)
        .with_seccomp_cache(cli.global.data_root.join("seccomp"));
    let env = Env {
        global: cli.global,
        state,
    };
    let Some(command) = cli.command else {
        bail!("no command given; see minirun --help");
    };
    match command {
        Command::Create(a) => create::run(&env, &a),
        Command::Start(a) => start::run(&env, &a),
        Command::State(a) => state::run(&env, &a.id),
        Command::Kill(a) => kill::run(&env, &a),
        Command::Delete(a) => delete::run(&env, &a),
        Command::Pause(a) => pause::run(&env, &a.id),
        Command::Resume(a) => resume::run(&env, &a.id),
        Command::Wait(a) => wait::run(&env, &a),
        Command::Update(a) => update::run(&env, &a),
        Command::List(a) => list::run(&env, &a),
        Command::Run(a) => run::run(&env, &a).map_err(|e| with_exit_code(e, 125)),
        Command::Load(a) => load::run(&env, &a),
        Command::Pull(a) => pull::run(&env, &a),
        Command::Login(a) => login::login(&a),
        Command::Logout(a) => login::logout(&a),
        Command::Tag(a) => tag::run(&env, &a),
        Command::Save(a) => save::run(&env, &a),
        Command::Images(a) => images::run(&env, &a),
        Command::Rmi(a) => rmi::run(&env, &a),
        Command::Ps(a) => ps::run(&env, &a),
        Command::Features => features::run(),
        Command::Logs(a) => logs::run(&env, &a),
        Command::Exec(a) => exec::run(&env, &a).map_err(|e| with_exit_code(e, 1)),
        Command::Attach(a) => attach::run(&env, &a),
        Command::Stop(a) => stop::run(&env, &a),
        Command::Rm(a) => rm::run(&env, &a),
        Command::Inspect(a) => inspect::run(&env, &a),
        Command::Port(a) => port::run(&env, &a),
        Command::Gc => gc::run(&env),
        Command::Network(cmd) => network::run(&env, cmd),
        Command::Image(cmd) => image::run(&env, &cmd),
        Command::Restart(a) => restart::run(&env, &a),
        Command::Rename(a) => rename::run(&env, &a),
        Command::Top(a) => top::run(&env, &a),
        Command::Stats(a) => stats::run(&env, &a),
        Command::Cp(a) => cp::run(&env, &a),
        Command::Diff(a) => diff::run(&env, &a),
        Command::Export(a) => export::run(&env, &a),
        Command::Commit(a) => commit::run(&env, &a),
        Command::Container(cmd) => match cmd {
            crate::cli::ContainerCmd::Prune(a) => prune::containers(&env, &a),
            crate::cli::ContainerCmd::Ls(a) => ps::run(&env, &a),
            crate::cli::ContainerCmd::Rm(a) => rm::run(&env, &a),
            crate::cli::ContainerCmd::Inspect(a) => inspect::run(&env, &a),
        },
        Command::System(cmd) => system::run(&env, &cmd),
        Command::Info(a) => system::info(&env, &a),
        Command::Version(a) => system::version(&a),
        Command::Events(a) => events::run(&env, &a),
        Command::Volume(cmd) => volume::run(&env, cmd),
    }
}

/// Guard against CVE-2019-5736 before a container can see this process
/// (see [`crate::seal`]).
pub fn seal_self() -> Result<()> {
    crate::seal::ensure_sealed().context("cannot re-execute minirun from a read-only or sealed copy")
}
