//! In-memory stand-ins for libcontainer and minirun-net, so the container
//! state machine runs in unit tests without root, namespaces or cgroups.
//! The fake engine's "container" is a real child process (`sh -c`), so
//! waiting for it and killing it behave as they do for real.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::rc::Rc;

use anyhow::{bail, Result};
use libcontainer::container::ContainerStatus;
use minirun_net::dns::DnsServer;
use minirun_net::{AttachRequest, Attachment, Liveness, NetMode};
use nix::unistd::Pid;

use super::engine::Engine;
use super::network::Network;
use super::store::Ctx;
use crate::oci::{CreateRequest, Stdio};

/// One fake container: its status and, once created, its process.
struct FakeContainer {
    status: ContainerStatus,
    child: Option<Child>,
}

/// libcontainer as a map of ids to child processes.
#[derive(Default)]
pub struct FakeEngine {
    containers: RefCell<HashMap<String, FakeContainer>>,
    /// What the next container's process runs (default: `exit 0`).
    pub script: RefCell<String>,
    /// Make the next create fail with this message.
    pub fail_create: RefCell<Option<String>>,
    /// Make the next start fail with this message.
    pub fail_start: RefCell<Option<String>>,
    /// Every call, in order, as "verb id".
    pub calls: RefCell<Vec<String>>,
}

impl FakeEngine {
    /// Ends the process of `id` as if it exited by itself (the engine then
    /// reports it stopped, as libcontainer does once the init is gone).
    pub fn exit(&self, id: &str) {
        if let Some(c) = self.containers.borrow_mut().get_mut(id) {
            if let Some(child) = &mut c.child {
                let _ = child.kill();
                let _ = child.wait();
            }
            c.status = ContainerStatus::Stopped;
        }
    }

    /// Adds a container libcontainer knows but whose creator is gone.
    pub fn insert(&self, id: &str, status: ContainerStatus) {
        self.containers
            .borrow_mut()
            .insert(id.into(), FakeContainer { status, child: None });
    }

    fn refresh(&self, id: &str) {
        let mut all = self.containers.borrow_mut();
        if let Some(c) = all.get_mut(id) {
            if c.status == ContainerStatus::Running {
                // looked up in /proc, not reaped: the test may still wait for it
                if c.child
                    .as_ref()
                    .is_some_and(|ch| !crate::util::proc::is_running(ch.id() as i32))
                {
                    c.status = ContainerStatus::Stopped;
                }
            }
        }
    }
}

impl Engine for FakeEngine {
    fn status(&self, id: &str) -> Option<ContainerStatus> {
        self.refresh(id);
        self.containers.borrow().get(id).map(|c| c.status)
    }

    fn create(&self, req: &CreateRequest, _stdio: Stdio) -> Result<Pid> {
        self.calls.borrow_mut().push(format!("create {}", req.id));
        if let Some(msg) = self.fail_create.borrow_mut().take() {
            bail!("{msg}");
        }
        if self.containers.borrow().contains_key(req.id) {
            bail!("container \"{}\" already exists", req.id);
        }
        let script = match self.script.borrow().as_str() {
            "" => "exit 0".to_string(),
            s => s.to_string(),
        };
        // created: the process waits for start (a line on its stdin), then runs the script
        let child = Command::new("sh")
            .args(["-c", &format!("read _; {script}")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        self.containers.borrow_mut().insert(
            req.id.into(),
            FakeContainer {
                status: ContainerStatus::Created,
                child: Some(child),
            },
        );
        Ok(pid)
    }

    fn start(&self, id: &str) -> Result<()> {
        self.calls.borrow_mut().push(format!("start {id}"));
        if let Some(msg) = self.fail_start.borrow_mut().take() {
            bail!("{msg}");
        }
        let mut all = self.containers.borrow_mut();
        let Some(c) = all.get_mut(id) else {
            bail!("container \"{id}\" does not exist")
        };
        if let Some(child) = &mut c.child {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                let _ = writeln!(stdin, "x");
            }
        }
        c.status = ContainerStatus::Running;
        Ok(())
    }

    fn kill(&self, id: &str, signal: &str, _all: bool) -> Result<()> {
        self.calls.borrow_mut().push(format!("kill {id} {signal}"));
        self.exit(id);
        Ok(())
    }

    fn delete(&self, id: &str, _force: bool) -> Result<()> {
        self.calls.borrow_mut().push(format!("delete {id}"));
        self.exit(id);
        self.containers.borrow_mut().remove(id);
        Ok(())
    }

    fn destroy_abandoned(&self, id: &str) -> Result<()> {
        self.calls.borrow_mut().push(format!("destroy {id}"));
        self.delete(id, true)
    }

    fn terminate(&self, id: &str) {
        self.calls.borrow_mut().push(format!("terminate {id}"));
        // libcontainer reports a container whose init is gone as stopped
        self.exit(id);
    }

    /// Every fake container counts as made from an image here.
    fn made_in(&self, _containers_dir: &Path) -> Vec<(String, Option<ContainerStatus>)> {
        let ids: Vec<String> = self.containers.borrow().keys().cloned().collect();
        ids.into_iter().map(|id| (id.clone(), self.status(&id))).collect()
    }

    fn gc_private(&self) {}
}

/// minirun-net as a map of container ids to attachments.
#[derive(Default)]
pub struct FakeNet {
    pub held: RefCell<HashMap<String, Attachment>>,
    pub fail_attach: RefCell<Option<String>>,
    pub calls: RefCell<Vec<String>>,
}

impl FakeNet {
    fn attachment(req: &AttachRequest) -> Attachment {
        let netns_path = match req.mode {
            NetMode::Host => None,
            _ => Some(PathBuf::from("/fake/netns").join(&req.container_id)),
        };
        Attachment {
            netns_owned: netns_path.is_some(),
            netns_path,
            ..Attachment::new(req)
        }
    }
}

impl Network for FakeNet {
    fn connect(&self, req: &minirun_net::ConnectRequest, _live: &dyn Liveness) -> Result<Attachment> {
        bail!("fake: connect {} to {}", req.container_id, req.network)
    }

    fn disconnect(&self, att: &Attachment) -> Result<Attachment> {
        Ok(att.clone())
    }

    fn extras(&self, _id: &str) -> Vec<Attachment> {
        Vec::new()
    }

    fn attach(&self, req: &AttachRequest, _live: &dyn Liveness) -> Result<Attachment> {
        self.calls.borrow_mut().push(format!("attach {}", req.container_id));
        if let Some(msg) = self.fail_attach.borrow_mut().take() {
            bail!("{msg}");
        }
        let att = Self::attachment(req);
        self.held.borrow_mut().insert(req.container_id.clone(), att.clone());
        Ok(att)
    }

    fn release(&self, att: &Attachment, _live: &dyn Liveness) -> Result<bool> {
        self.calls.borrow_mut().push(format!("release {}", att.container_id));
        self.held.borrow_mut().remove(&att.container_id);
        Ok(false)
    }

    fn recorded(&self, id: &str) -> Option<Attachment> {
        self.held.borrow().get(id).cloned()
    }

    fn needs_gc(&self, live: &dyn Liveness) -> bool {
        self.held.borrow().keys().any(|id| !live.is_alive(id))
    }

    fn gc(&self, live: &dyn Liveness) -> Result<()> {
        self.calls.borrow_mut().push("gc".into());
        self.held.borrow_mut().retain(|id, _| live.is_alive(id));
        Ok(())
    }

    fn bind_dns(&self, _att: &Attachment, _dns: &[IpAddr]) -> Result<Option<DnsServer>> {
        Ok(None)
    }
}

impl<T: Engine> Engine for Rc<T> {
    fn status(&self, id: &str) -> Option<ContainerStatus> {
        (**self).status(id)
    }
    fn create(&self, req: &CreateRequest, stdio: Stdio) -> Result<Pid> {
        (**self).create(req, stdio)
    }
    fn start(&self, id: &str) -> Result<()> {
        (**self).start(id)
    }
    fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        (**self).kill(id, signal, all)
    }
    fn delete(&self, id: &str, force: bool) -> Result<()> {
        (**self).delete(id, force)
    }
    fn destroy_abandoned(&self, id: &str) -> Result<()> {
        (**self).destroy_abandoned(id)
    }
    fn terminate(&self, id: &str) {
        (**self).terminate(id)
    }
    fn made_in(&self, containers_dir: &Path) -> Vec<(String, Option<ContainerStatus>)> {
        (**self).made_in(containers_dir)
    }
    fn gc_private(&self) {
        (**self).gc_private()
    }
}

impl<T: Network> Network for Rc<T> {
    fn attach(&self, req: &AttachRequest, live: &dyn Liveness) -> Result<Attachment> {
        (**self).attach(req, live)
    }
    fn connect(&self, req: &minirun_net::ConnectRequest, live: &dyn Liveness) -> Result<Attachment> {
        (**self).connect(req, live)
    }
    fn disconnect(&self, att: &Attachment) -> Result<Attachment> {
        (**self).disconnect(att)
    }
    fn extras(&self, id: &str) -> Vec<Attachment> {
        (**self).extras(id)
    }
    fn release(&self, att: &Attachment, live: &dyn Liveness) -> Result<bool> {
        (**self).release(att, live)
    }
    fn recorded(&self, id: &str) -> Option<Attachment> {
        (**self).recorded(id)
    }
    fn needs_gc(&self, live: &dyn Liveness) -> bool {
        (**self).needs_gc(live)
    }
    fn gc(&self, live: &dyn Liveness) -> Result<()> {
        (**self).gc(live)
    }
    fn bind_dns(&self, att: &Attachment, dns: &[IpAddr]) -> Result<Option<DnsServer>> {
        (**self).bind_dns(att, dns)
    }
}

/// A context on fakes, with its roots in a fresh temporary directory.
pub struct Fixture {
    pub ctx: Ctx,
    pub engine: Rc<FakeEngine>,
    pub net: Rc<FakeNet>,
    /// Keeps the roots alive while the test runs.
    pub _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Rc::new(FakeEngine::default());
        let net = Rc::new(FakeNet::default());
        let ctx = Ctx {
            engine: Box::new(engine.clone()),
            net: Box::new(net.clone()),
            root: dir.path().join("run"),
            data_root: dir.path().join("data"),
        };
        std::fs::create_dir_all(&ctx.root).unwrap();
        std::fs::create_dir_all(ctx.containers_dir()).unwrap();
        Self {
            ctx,
            engine,
            net,
            _dir: dir,
        }
    }
}
