//! Command line: runc's verbs (so engines can drive minirun as their OCI
//! runtime) and docker's everyday verbs, in one clap-derived tree.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod docker_help;
mod run_flags;
mod security;
pub use docker_help::{parse as parse_docker_like, unknown_flag};
pub use run_flags::{ResourceArgs, RunFlags};
pub use security::{HostArgs, MountArgs, SecurityArgs};

#[derive(Debug, Parser)]
#[command(
    name = "minirun",
    disable_help_flag = true,
    disable_version_flag = true,
    about = "A daemonless, OCI-compatible container runtime with networking built in"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    /// Print the version (runc's format: `minirun version X`, `spec: Y`)
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Global flags, named as runc names them so engines can pass theirs.
#[derive(Debug, Args, Clone)]
pub struct GlobalOpts {
    /// Print help
    #[arg(long, global = true, action = clap::ArgAction::Help, help_heading = "Global Options")]
    pub help: Option<bool>,
    /// Directory for container state (runc's --root)
    #[arg(
        long,
        global = true,
        env = "MINIRUN_ROOT",
        default_value = "/run/minirun",
        help_heading = "Global Options"
    )]
    pub root: PathBuf,
    /// Directory for images, container layers and networks
    #[arg(
        long,
        global = true,
        env = "MINIRUN_DATA_ROOT",
        default_value = "/var/lib/minirun",
        help_heading = "Global Options"
    )]
    pub data_root: PathBuf,
    /// Write logs to this file instead of stderr
    #[arg(long, global = true, help_heading = "Global Options")]
    pub log: Option<PathBuf>,
    /// Format of the log file
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, help_heading = "Global Options")]
    pub log_format: LogFormat,
    /// Log debug messages
    #[arg(long, global = true, help_heading = "Global Options")]
    pub debug: bool,
    /// Let systemd manage the cgroups of new containers (cgroup v2, cgroupsPath slice:prefix:name)
    #[arg(long, global = true, hide = true, help_heading = "Global Options")]
    pub systemd_cgroup: bool,
    /// runc's path to criu; accepted and ignored (minirun does not checkpoint)
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "PATH",
        help_heading = "Global Options"
    )]
    pub criu: Option<PathBuf>,
    /// runc's rootless mode (true|false|auto); accepted, minirun decides by its uid
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "VALUE",
        help_heading = "Global Options"
    )]
    pub rootless: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Each verb's flags are built only when it is the verb given (see
/// `docker_help::parse_from`).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create a container from an OCI bundle (runc create)
    Create(CreateArgs),
    /// Start a created container (runc start), or a stopped one (docker start [-a] [-i])
    Start(StartArgs),
    /// Print the OCI state of a container as JSON (runc state)
    State(IdArg),
    /// Send a signal to a container's init process (runc kill)
    Kill(KillArgs),
    /// Delete a container and everything it holds (runc delete)
    Delete(DeleteArgs),
    /// Freeze every process of a running container (runc pause)
    Pause(IdArg),
    /// Thaw a paused container (runc resume, docker unpause)
    #[command(alias = "unpause")]
    Resume(IdArg),
    /// Block until containers stop, then print their exit codes (docker wait)
    Wait(WaitArgs),
    /// Change a running container's cgroup limits (runc update --resources)
    Update(UpdateArgs),
    /// List containers created from bundles and images (runc list)
    List(ListArgs),
    /// Run a bundle (--bundle DIR ID, as runc) or an image (IMAGE [COMMAND...], as docker)
    #[command(
        override_usage = "minirun run [OPTIONS] IMAGE [COMMAND] [ARG...]\n        minirun run --bundle DIR [OPTIONS] ID"
    )]
    Run(Box<RunArgs>),
    /// Load images from a docker-save archive or an OCI layout (dir, .tar, .tar.gz)
    Load(LoadArgs),
    /// Pull an image from a registry
    Pull(PullArgs),
    /// Log in to a registry (credentials go to docker's config.json or --authfile)
    Login(LoginArgs),
    /// Log out of a registry
    Logout(LogoutArgs),
    /// Give an image another name: tag SOURCE TARGET
    Tag(TagArgs),
    /// Write images to a docker-save archive (docker load and podman load read it)
    Save(SaveArgs),
    /// List images
    Images(ImagesArgs),
    /// Remove images
    Rmi(RmiArgs),
    /// List containers made from images
    Ps(PsArgs),
    /// Print a detached container's output
    Logs(LogsArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Attach to a running container's terminal (detach: Ctrl-P Ctrl-Q), or follow the output of one without
    Attach(AttachArgs),
    /// Stop containers: SIGTERM, then SIGKILL after the timeout
    Stop(StopArgs),
    /// Remove containers
    Rm(RmArgs),
    /// Return low-level information on containers, images or networks (docker's JSON, or --format)
    Inspect(InspectArgs),
    /// Show a container's published ports
    Port(NamesArg),
    /// Remove what crashed runs left behind (processes gone)
    Gc,
    /// What this runtime supports, as JSON (runc features)
    Features,
    /// Manage networks: create, ls, inspect, rm
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage images: inspect, ls, rm
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage named volumes: create, ls, inspect, rm
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(NameArg),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Manage containers: prune, ls, rm, inspect
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage minirun: prune, df, info
    #[command(subcommand)]
    System(SystemCmd),
    /// Display system-wide information
    Info(FormatArg),
    /// Show the minirun version information (docker's shape)
    Version(FormatArg),
    /// Get real time events from the local event log
    Events(EventsArgs),
}

impl Command {
    /// Commands that only read and print (listings, logs, inspect): a reader
    /// that goes away ends them quietly, as it ends `ls`. Every other command
    /// changes state and must not die halfway (see `main.rs`).
    pub fn only_prints(&self) -> bool {
        match self {
            Command::State(_)
            | Command::List(_)
            | Command::Images(_)
            | Command::Ps(_)
            | Command::Features
            | Command::Logs(_)
            | Command::Attach(_)
            | Command::Inspect(_)
            | Command::Port(_)
            | Command::Top(_)
            | Command::Stats(_)
            | Command::Diff(_)
            | Command::Info(_)
            | Command::Version(_)
            | Command::Events(_) => true,
            Command::Image(c) => matches!(c, ImageCmd::Inspect(_) | ImageCmd::Ls(_)),
            Command::Network(c) => matches!(c, NetworkCmd::Ls | NetworkCmd::Inspect(_)),
            Command::Volume(c) => matches!(c, VolumeCmd::Ls { .. } | VolumeCmd::Inspect { .. }),
            Command::Container(c) => matches!(c, ContainerCmd::Ls(_) | ContainerCmd::Inspect(_)),
            Command::System(c) => matches!(c, SystemCmd::Df(_) | SystemCmd::Info(_)),
            _ => false,
        }
    }
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show all events created since timestamp (RFC 3339, unix seconds, or a duration ago: 10m)
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided (container=, event=, type=, image=, network=)
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Format the output using the given Go template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// CONTAINER
    pub container: String,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Archive mode (accepted: ownership is kept from the archive)
    #[arg(short, long)]
    pub archive: bool,
    /// CONTAINER:SRC_PATH, a host path, or - (a tar stream on stdin)
    pub src: String,
    /// CONTAINER:DEST_PATH, a host path, or - (a tar stream on stdout)
    pub dest: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// CONTAINER
    pub container: String,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL)
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit (accepted; minirun reads the layer as it is)
    #[arg(short, long)]
    pub pause: bool,
    /// CONTAINER
    pub container: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    /// CONTAINER
    pub container: String,
    /// NEW_NAME
    pub new_name: String,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// CONTAINER
    pub container: String,
    /// Options for ps (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Pretty-print stats using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    pub containers: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Display detailed information on one or more images
    Inspect(ImageInspectArgs),
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(RmiArgs),
    /// Remove unused images (dangling; with -a, every image no container uses)
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct ImageInspectArgs {
    /// Format the output using the given Go template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Return JSON for the specified type: container, image or network
    #[arg(long = "type", value_name = "TYPE", value_parser = ["container", "image", "network"])]
    pub kind: Option<String>,
    /// Display total file sizes if the type is container (accepted)
    #[arg(short, long)]
    pub size: bool,
    #[arg(required = true, value_name = "NAME|ID")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show all images (accepted: minirun keeps no intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided (dangling=, reference=, label=)
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Pretty-print images using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Create a volume (a random name if none is given); print its name
    Create {
        name: Option<String>,
        /// Driver: only local
        #[arg(short, long, default_value = "local")]
        driver: String,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print volumes as JSON
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no container uses
    #[command(alias = "remove")]
    Rm {
        /// No error for a volume that does not exist
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every volume no container uses
    Prune {
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a bridge network with its own subnet
    Create(NetworkCreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls,
    /// Print networks and the containers attached to them, as JSON (or --format)
    Inspect(NetworkInspectArgs),
    /// Remove networks no running container uses
    #[command(alias = "remove")]
    Rm(NetworkNamesArg),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a running container to a network (one more interface: eth1, eth2...)
    Connect(NetworkConnectArgs),
    /// Disconnect a container from a network
    Disconnect(NetworkDisconnectArgs),
}

#[derive(Debug, Args)]
#[command(override_usage = "minirun network connect [OPTIONS] NETWORK CONTAINER")]
pub struct NetworkConnectArgs {
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long, value_name = "IP")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Add network-scoped alias for the container
    #[arg(long, value_name = "NAME")]
    pub alias: Vec<String>,
    pub network: String,
    pub container: String,
}

#[derive(Debug, Args)]
#[command(override_usage = "minirun network disconnect [OPTIONS] NETWORK CONTAINER")]
pub struct NetworkDisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Remove all unused images, not just dangling ones (image prune, system prune)
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (until=DURATION|TIMESTAMP, label=KEY[=VALUE])
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Prune volumes (system prune)
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    /// Remove all stopped containers
    Prune(PruneArgs),
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(PsArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
}

#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Remove unused data: stopped containers, unused networks, dangling (with -a: unused) images
    Prune(PruneArgs),
    /// Show disk usage
    Df(DfArgs),
    /// Display system-wide information
    Info(FormatArg),
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short, long)]
    pub verbose: bool,
    /// Pretty-print using a Go template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct FormatArg {
    /// Format the output using the given Go template
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Subnet in CIDR form (default: a free 10.89.N.0/24); give it twice, once per
    /// family, for a dual-stack network (an IPv6 subnet implies --ipv6)
    #[arg(long)]
    pub subnet: Vec<String>,
    /// Gateway address inside the subnet (default: its first address); one per family
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Dual stack: IPv6 besides IPv4 (a ULA /64 from fd00::/8 when no IPv6 --subnet is
    /// given). `network create --ipv6 bridge` configures the default network before its
    /// first use
    #[arg(long)]
    pub ipv6: bool,
    /// Inter-container communication on this network (--icc=false: containers cannot reach each other)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub icc: Option<bool>,
    /// Driver: only bridge
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Driver option KEY=VALUE: mtu=N (also com.docker.network.driver.mtu=N)
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct NetworkInspectArgs {
    /// Format the output using the given Go template
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetworkNamesArg {
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Archive or directory to load
    #[arg(short, long)]
    pub input: PathBuf,
}

// How to reach a registry: flags as podman names them.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryOpts {
    /// Verify the registry's TLS certificate (--tls-verify=false: accept any, and plain HTTP)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Directory with the registry's CA certificates (*.crt) and client certificate (NAME.cert + NAME.key), instead of certs.d/HOST:PORT
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Credentials file (podman's auth.json or docker's config.json format)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub registry: RegistryOpts,
    /// Platform of the image in a multi-platform index: os/arch[/variant]
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Print only the image's full name
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST]
    pub image: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub registry: RegistryOpts,
    /// User name
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry (HOST[:PORT]); default docker.io
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Credentials file (podman's auth.json or docker's config.json format)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Registry (HOST[:PORT]); default docker.io
    pub server: Option<String>,
}

/// `run --pull`: when to pull the image (docker's policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum PullPolicy {
    /// Pull when the image is not in the store
    #[default]
    Missing,
    /// Pull every time
    Always,
    /// Never pull: fail when the image is not in the store
    Never,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Image (name, id or digest)
    pub source: String,
    /// New name: NAME[:TAG]
    pub target: String,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to this file instead of standard output
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones
    #[arg(short, long)]
    pub all: bool,
    /// Print only the ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Pretty-print containers using a Go template (`table ...` for columns);
    /// with a container id: runc's `ps`, its processes (table or json)
    #[arg(long)]
    pub format: Option<String>,
    /// Filter output based on conditions provided (name=, status=, label=, ancestor=, id=, exited=)
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "N")]
    pub last: Option<usize>,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// runc ps: list the processes of this container
    pub id: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing output until the container ends
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs ("all" by default)
    #[arg(short = 'n', long, value_name = "N|all")]
    pub tail: Option<String>,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp (RFC 3339, unix seconds) or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (RFC 3339, unix seconds) or relative (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    /// Show extra details provided to logs (none are kept: accepted)
    #[arg(long)]
    pub details: bool,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep stdin open
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal (sets TERM)
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container (runc: --cwd)
    #[arg(short, long, visible_alias = "cwd")]
    pub workdir: Option<String>,
    /// User (name|uid[:group|gid])
    #[arg(short, long)]
    pub user: Option<String>,
    #[command(flatten)]
    pub runc: ExecRuncOpts,
    /// Do not wait for the process (runc exec --detach)
    #[arg(short, long)]
    pub detach: bool,
    /// OCI process.json describing the process (runc exec --process)
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Write the process's pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to receive the pseudo-terminal master (runc exec --console-socket)
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Pass this many extra file descriptors (from 3 on) to the process (runc exec --preserve-fds)
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    pub container: String,
    /// The command and its arguments (not with --process)
    #[arg(trailing_var_arg = true)]
    pub command: Vec<String>,
}

// runc exec's options besides the docker-style ones (see `commands/exec_opts.rs`).
#[derive(Debug, Args, Default)]
pub struct ExecRuncOpts {
    /// Add a capability to the process's bounding, effective and permitted sets (CAP_NET_ADMIN)
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,
    /// Add a supplementary group id
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// AppArmor profile for the process (refused on a host without AppArmor)
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// SELinux label for the process (refused: minirun applies no SELinux labels)
    #[arg(long, value_name = "LABEL")]
    pub process_label: Option<String>,
    /// Run the process in this existing sub-cgroup of the container's cgroup
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<String>,
    /// Exec even if the container is paused (the process runs once it is resumed)
    #[arg(long)]
    pub ignore_paused: bool,
}

impl ExecRuncOpts {
    /// Whether any option that changes the process itself is given.
    pub fn changes_process(&self) -> bool {
        !self.cap.is_empty()
            || !self.additional_gids.is_empty()
            || self.no_new_privs
            || self.apparmor.is_some()
            || self.process_label.is_some()
    }
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach to its output (and its terminal) until it exits; exit with its code
    #[arg(short, long)]
    pub attach: bool,
    /// Attach our input too (its terminal's, when it has one); implies --attach
    #[arg(short, long)]
    pub interactive: bool,
    /// Keys that detach (with --attach), docker's syntax
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    #[command(flatten)]
    pub id: IdArg,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Keys that detach, docker's syntax: `ctrl-p,ctrl-q` (the default), `ctrl-a,x`, `ctrl-@`...
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Do not relay our input to the container
    #[arg(long)]
    pub no_stdin: bool,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL (default: the container's --stop-timeout, else 10)
    #[arg(short = 't', long = "time")]
    pub time: Option<u64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill the container first if it runs
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NamesArg {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// Container id (exact, as runc takes it; else a name or unique id prefix
    /// of a container made from an image)
    pub id: String,
}

#[derive(Debug, Args, Clone, Default)]
pub struct BundleOpts {
    /// Path to the OCI bundle (the directory holding config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[command(flatten)]
    pub runc: RuncOpts,
}

// runc's options for creating a container from a bundle.
#[derive(Debug, Args, Clone, Default)]
pub struct RuncOpts {
    /// Unix socket to receive the pseudo-terminal master (bundles with terminal: true)
    #[arg(long, help_heading = "runc Options")]
    pub console_socket: Option<PathBuf>,
    /// Write the container's init pid to this file
    #[arg(long, help_heading = "runc Options")]
    pub pid_file: Option<PathBuf>,
    /// Pass this many extra file descriptors (from 3 on) to the container
    #[arg(long, default_value_t = 0, help_heading = "runc Options")]
    pub preserve_fds: i32,
    /// Use MS_MOVE instead of pivot_root (runc compatibility)
    #[arg(long, help_heading = "runc Options")]
    pub no_pivot: bool,
    /// Accepted for runc compatibility; minirun never creates a session keyring
    #[arg(long, help_heading = "runc Options")]
    pub no_new_keyring: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub bundle: BundleOpts,
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Send the signal to every process of the container
    #[arg(short, long)]
    pub all: bool,
    /// Signal to send (docker's spelling; default KILL for containers made from images)
    #[arg(short = 's', long = "signal", value_name = "SIGNAL")]
    pub signal_flag: Option<String>,
    /// Container id (or a name or unique id prefix of a container made from an image)
    pub id: String,
    /// Signal name (TERM, SIGTERM) or number (15); default TERM, as runc
    pub signal: Option<String>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Containers (names or ids) to wait for
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill the container first if it is running
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// OCI LinuxResources as JSON: a file, or `-` for stdin (the other options are then ignored)
    #[arg(short, long, value_name = "FILE|-")]
    pub resources: Option<PathBuf>,
    #[command(flatten)]
    pub flags: UpdateFlags,
    pub id: String,
}

// runc update's resource options (used when --resources is not given).
#[derive(Debug, Args, Default)]
pub struct UpdateFlags {
    /// Block IO weight (10-1000)
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period, in microseconds
    #[arg(long, value_name = "N")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota per period, in microseconds (-1: none)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst, in microseconds
    #[arg(long, value_name = "N")]
    pub cpu_burst: Option<u64>,
    /// CPU realtime period, in microseconds
    #[arg(long, value_name = "N")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime per period, in microseconds
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU shares (relative weight; docker: --cpu-shares)
    #[arg(long, visible_alias = "cpu-shares", short = 'c', value_name = "N")]
    pub cpu_share: Option<u64>,
    /// Number of CPUs, docker's spelling (1.5: a quota of 150000 per 100000 microseconds)
    #[arg(long, value_name = "DECIMAL")]
    pub cpus: Option<String>,
    /// CPUs to use (0-3,7)
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use (0-3,7)
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with k, m, g; -1: none)
    #[arg(short = 'm', long, value_name = "SIZE", allow_negative_numbers = true)]
    pub memory: Option<String>,
    /// Memory soft limit (bytes, or with k, m, g)
    #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (bytes, or with k, m, g; -1: none)
    #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of processes (0 or -1: none)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema: refused, minirun has no RDT support
    #[arg(long, value_name = "SCHEMA", hide = true)]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema: refused, minirun has no RDT support
    #[arg(long, value_name = "SCHEMA", hide = true)]
    pub mem_bw_schema: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Print only the ids
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run the OCI bundle in DIR; the first argument is then the container id
    #[arg(short, long, help_heading = "runc Options")]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub runc: RuncOpts,
    /// Keep the container's state after it exits (bundle mode; runc's --keep)
    #[arg(long, help_heading = "runc Options")]
    pub keep: bool,
    /// Run in the background: print the container id and return once it runs
    #[arg(short, long)]
    pub detach: bool,
    /// Name of the container (unique)
    #[arg(long)]
    pub name: Option<String>,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set an environment variable (KEY=VALUE, or KEY to pass minirun's own)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// User (name|uid[:group|gid]) the process runs as
    #[arg(short, long)]
    pub user: Option<String>,
    /// Override the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container hostname (default: the first 12 characters of the id)
    #[arg(long, short = 'h')]
    pub hostname: Option<String>,
    /// Bind-mount a host path or a named volume: HOST|NAME:CONTAINER[:OPTIONS], options ro|rw, z|Z,
    /// shared|slave|private|rshared|rslave|rprivate, nocopy (comma-separated)
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:OPTS]")]
    pub volume: Vec<String>,
    /// Keep stdin open
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Keys that detach from `-it`, docker's syntax: `ctrl-p,ctrl-q` (the default), `ctrl-a,x`, `ctrl-@`...
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Network: bridge (default for images), none, host, container:<id|name> or
    /// a network made by `network create`; with --bundle, the bundle's own
    /// namespaces unless given. Given again: more user-defined networks (eth1...)
    #[arg(long, alias = "network")]
    pub net: Vec<String>,
    /// Publish a container port: [IP:][HOST:]CONTAINER[/tcp|udp], ranges allowed
    #[arg(short, long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes on free host ports
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// DNS server for the container (on a user-defined network: where the embedded
    /// resolver forwards names it does not know)
    #[arg(long, value_name = "IP")]
    pub dns: Vec<std::net::IpAddr>,
    /// Another name peers on a user-defined network resolve to this container
    #[arg(long = "network-alias", alias = "net-alias", value_name = "NAME")]
    pub network_alias: Vec<String>,
    /// Pull the image: missing (default), always, never
    #[arg(long, value_enum, env = "MINIRUN_PULL", default_value_t = PullPolicy::Missing, value_name = "POLICY")]
    pub pull: PullPolicy,
    /// Platform to pull: os/arch[/variant]
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Pull without progress output
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryOpts,
    #[command(flatten)]
    pub security: SecurityArgs,
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub mounts: MountArgs,
    #[command(flatten)]
    pub docker: RunFlags,
    /// Container id (bundle mode) or image, then the command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = false)]
    pub args: Vec<String>,
}

impl RunArgs {
    pub fn bundle_opts(&self) -> Option<BundleOpts> {
        self.bundle.as_ref().map(|b| BundleOpts {
            bundle: b.clone(),
            runc: self.runc.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
