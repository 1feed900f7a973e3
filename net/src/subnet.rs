//! Small IPv4 and IPv6 prefix types (`10.89.0.0/24`, `fd00:89::/64`), serialized as their
//! string forms.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Net {
    /// A prefix; the address is masked to the network address. `prefix_len` must be <= 32.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Self> {
        if prefix_len > 32 {
            return None;
        }
        let mask = Self::mask_of(prefix_len);
        Some(Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix_len,
        })
    }

    fn mask_of(prefix_len: u8) -> u32 {
        if prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - prefix_len as u32)
        }
    }

    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
    pub fn mask(&self) -> u32 {
        Self::mask_of(self.prefix_len)
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
    /// Last address of the prefix (same as broadcast).
    pub fn last(&self) -> Ipv4Addr {
        self.broadcast()
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
    /// The n-th address of the prefix (0 = network address), if inside.
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - self.prefix_len as u32);
        if (n as u64) < size {
            Some(Ipv4Addr::from(u32::from(self.addr) + n))
        } else {
            None
        }
    }
    /// Number of addresses in the prefix.
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix_len as u32)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv4Net {
    type Err = Error;
    /// Parses `a.b.c.d/len`; host bits must be zero.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidSubnet(s.to_string());
        let (a, l) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let len: u8 = l.parse().map_err(|_| bad())?;
        let net = Ipv4Net::new(addr, len).ok_or_else(bad)?;
        if net.addr != addr {
            return Err(bad());
        }
        Ok(net)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IPv6 prefix (`fd00:89::/64`); the address is always the network address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    prefix_len: u8,
}

impl Ipv6Net {
    /// A prefix; the address is masked to the network address. `prefix_len` must be <= 128.
    pub fn new(addr: Ipv6Addr, prefix_len: u8) -> Option<Self> {
        if prefix_len > 128 {
            return None;
        }
        Some(Ipv6Net {
            addr: Ipv6Addr::from(u128::from(addr) & Self::mask_of(prefix_len)),
            prefix_len,
        })
    }
    fn mask_of(prefix_len: u8) -> u128 {
        if prefix_len == 0 {
            0
        } else {
            u128::MAX << (128 - prefix_len as u32)
        }
    }
    pub fn network(&self) -> Ipv6Addr {
        self.addr
    }
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
    /// Last address of the prefix.
    pub fn last(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) | !Self::mask_of(self.prefix_len))
    }
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & Self::mask_of(self.prefix_len) == u128::from(self.addr)
    }
    pub fn overlaps(&self, other: &Ipv6Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
    /// The n-th address of the prefix (0 = network address), if inside.
    pub fn nth(&self, n: u128) -> Option<Ipv6Addr> {
        let host_bits = 128 - self.prefix_len as u32;
        if host_bits < 128 && n >> host_bits != 0 {
            return None;
        }
        Some(Ipv6Addr::from(u128::from(self.addr) + n))
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv6Net {
    type Err = Error;
    /// Parses `addr/len`; host bits must be zero.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidSubnet(s.to_string());
        let (a, l) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| bad())?;
        let len: u8 = l.parse().map_err(|_| bad())?;
        let net = Ipv6Net::new(addr, len).ok_or_else(bad)?;
        if net.addr != addr {
            return Err(bad());
        }
        Ok(net)
    }
}

impl Serialize for Ipv6Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv6Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_props() {
        let n: Ipv4Net = "10.89.0.0/24".parse().unwrap();
        assert_eq!(n.to_string(), "10.89.0.0/24");
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 89, 0, 255));
        assert!(n.contains(Ipv4Addr::new(10, 89, 0, 7)));
        assert!(!n.contains(Ipv4Addr::new(10, 89, 1, 7)));
        assert_eq!(n.nth(1), Some(Ipv4Addr::new(10, 89, 0, 1)));
        assert_eq!(n.nth(256), None);
        assert!(n.overlaps(&"10.0.0.0/8".parse().unwrap()));
        assert!(!n.overlaps(&"10.89.1.0/24".parse().unwrap()));
        assert!("10.89.0.1/24".parse::<Ipv4Net>().is_err());
        assert!("10.89.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("nope".parse::<Ipv4Net>().is_err());
        let j = serde_json::to_string(&n).unwrap();
        assert_eq!(j, "\"10.89.0.0/24\"");
        assert_eq!(serde_json::from_str::<Ipv4Net>(&j).unwrap(), n);
        assert_eq!(Ipv4Net::new(Ipv4Addr::new(1, 2, 3, 4), 0).unwrap().mask(), 0);
    }

    #[test]
    fn v6_parse_and_props() {
        let n: Ipv6Net = "fd00:89::/64".parse().unwrap();
        assert_eq!(n.to_string(), "fd00:89::/64");
        assert!(n.contains("fd00:89::ffff".parse().unwrap()));
        assert!(!n.contains("fd00:89:0:1::1".parse().unwrap()));
        assert_eq!(n.nth(1), Some("fd00:89::1".parse().unwrap()));
        assert_eq!(n.last(), "fd00:89::ffff:ffff:ffff:ffff".parse::<Ipv6Addr>().unwrap());
        assert_eq!(n.nth(1 << 64), None);
        assert!(n.overlaps(&"fd00::/16".parse().unwrap()));
        assert!(!n.overlaps(&"fd00:89:0:1::/64".parse().unwrap()));
        assert!("fd00:89::1/64".parse::<Ipv6Net>().is_err());
        assert!("fd00::/129".parse::<Ipv6Net>().is_err());
        assert!("10.0.0.0/8".parse::<Ipv6Net>().is_err());
        let j = serde_json::to_string(&n).unwrap();
        assert_eq!(serde_json::from_str::<Ipv6Net>(&j).unwrap(), n);
        assert_eq!(
            Ipv6Net::new(Ipv6Addr::LOCALHOST, 0).unwrap().nth(5),
            Some("::5".parse().unwrap())
        );
    }
}
