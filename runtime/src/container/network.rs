//! The seam between the container state machine and minirun-net: attach,
//! release and collect a container's network. [`Host`] is the real one;
//! unit tests use an in-memory fake.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Result;
use minirun_net::dns::{host_upstreams, Directory, DnsServer};
use minirun_net::{AttachRequest, Attachment, ConnectRequest, Liveness};

pub trait Network {
    /// Gives the container its network; on failure nothing of it is left.
    fn attach(&self, req: &AttachRequest, live: &dyn Liveness) -> Result<Attachment>;
    /// Releases the container's network if net still holds it, unless live
    /// containers joined its namespace; returns whether it was kept for them.
    fn release(&self, att: &Attachment, live: &dyn Liveness) -> Result<bool>;
    /// What net recorded for a container whose own record lacks it (a run
    /// killed between attach and saving its record).
    fn recorded(&self, id: &str) -> Option<Attachment>;
    /// Connects a container with a namespace of its own to one more network.
    fn connect(&self, req: &ConnectRequest, live: &dyn Liveness) -> Result<Attachment>;
    /// Takes one network away from a running container; returns what stays of the
    /// attachment (the first network's keeps its namespace, without the network).
    fn disconnect(&self, att: &Attachment) -> Result<Attachment>;
    /// The networks net holds for `id` besides its first.
    fn extras(&self, id: &str) -> Vec<Attachment>;
    /// Whether any network record belongs to nothing that lives.
    fn needs_gc(&self, live: &dyn Liveness) -> bool;
    /// Removes every network piece no live container holds.
    fn gc(&self, live: &dyn Liveness) -> Result<()>;
    /// The embedded DNS responder of a container on a user-defined network,
    /// bound in its namespace (None for other networks). `dns`: `--dns`.
    fn bind_dns(&self, att: &Attachment, dns: &[IpAddr]) -> Result<Option<DnsServer>>;
}

/// minirun-net on this host, under the given roots.
pub struct Host {
    pub root: PathBuf,
    pub data_root: PathBuf,
}

impl Network for Host {
    fn attach(&self, req: &AttachRequest, live: &dyn Liveness) -> Result<Attachment> {
        Ok(minirun_net::attach(req, live)?)
    }

    fn release(&self, att: &Attachment, live: &dyn Liveness) -> Result<bool> {
        // only what net still holds: a port or address released earlier may
        // belong to another container by now
        if self.recorded(&att.container_id).is_none() {
            return Ok(false);
        }
        minirun_net::release(att, live)?;
        Ok(minirun_net::attach::load_attachment(&self.root, &att.container_id)?.is_some())
    }

    fn recorded(&self, id: &str) -> Option<Attachment> {
        minirun_net::attach::load_attachment(&self.root, id).ok().flatten()
    }

    fn connect(&self, req: &ConnectRequest, live: &dyn Liveness) -> Result<Attachment> {
        Ok(minirun_net::connect(req, live)?)
    }

    fn disconnect(&self, att: &Attachment) -> Result<Attachment> {
        Ok(minirun_net::disconnect(att)?)
    }

    fn extras(&self, id: &str) -> Vec<Attachment> {
        minirun_net::attach::extra_attachments(&self.root, id).unwrap_or_default()
    }

    fn needs_gc(&self, live: &dyn Liveness) -> bool {
        minirun_net::needs_gc(&self.root, live)
    }

    fn gc(&self, live: &dyn Liveness) -> Result<()> {
        minirun_net::gc(&self.root, &self.data_root, live)?;
        Ok(())
    }

    fn bind_dns(&self, att: &Attachment, dns: &[IpAddr]) -> Result<Option<DnsServer>> {
        if !att.embedded_dns() {
            return Ok(None);
        }
        let (Some(netns), Some(network)) = (&att.netns_path, &att.network) else {
            return Ok(None);
        };
        let upstreams = if dns.is_empty() {
            host_upstreams()
        } else {
            dns.iter().map(|ip| SocketAddr::new(*ip, 53)).collect()
        };
        Ok(Some(DnsServer::bind(
            netns,
            Directory::for_container(&self.root, network, &att.container_id),
            upstreams,
        )?))
    }
}
