//! Address types of the inventory: IPv4 subnets and MAC addresses.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn netmask(self) -> Ipv4Addr {
        let bits = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        };
        Ipv4Addr::from(bits)
    }

    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !u32::from(self.netmask()))
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.netmask()) == u32::from(self.network)
    }

    /// Usable host address: inside, not the network nor the broadcast address.
    pub fn is_host(self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.network && ip != self.broadcast()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("malformed CIDR {s:?}; expected a subnet like 10.0.100.0/24"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("malformed CIDR {s:?}: {addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("malformed CIDR {s:?}: prefix length must be 0..=32"))?;
        let cidr = Cidr {
            network: addr,
            prefix,
        };
        let network = Ipv4Addr::from(u32::from(addr) & u32::from(cidr.netmask()));
        if network != addr {
            return Err(format!(
                "malformed CIDR {s:?}: host bits are set; did you mean {network}/{prefix}?"
            ));
        }
        Ok(cidr)
    }
}

/// A MAC address, normalised to lowercase colon-separated form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(String);

impl Mac {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What machines send (iPXE's `${mac:hexhyp}`, Linux, the discover agent): colon or hyphen
    /// separated, any case. The inventory itself takes only the colon form.
    pub fn parse_any_separator(s: &str) -> Result<Mac, String> {
        s.replace('-', ":").parse()
    }

    /// `52-54-00-12-34-56`: the form iPXE and PXELINUX use in file names.
    pub fn dashed(&self) -> String {
        self.0.replace(':', "-")
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let ok = parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            return Err(format!(
                "malformed MAC address {s:?}; expected six colon-separated hex pairs like 52:54:00:12:34:56"
            ));
        }
        let first = u8::from_str_radix(parts[0], 16).unwrap_or(0);
        if first & 1 == 1 {
            return Err(format!(
                "MAC address {s:?} is a multicast address and cannot belong to a NIC"
            ));
        }
        Ok(Mac(s.to_ascii_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        let c: Cidr = "10.0.100.0/24".parse().unwrap();
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 0, 100, 255));
        assert!(c.contains(Ipv4Addr::new(10, 0, 100, 7)));
        assert!(!c.contains(Ipv4Addr::new(10, 0, 101, 7)));
        assert!(!c.is_host(Ipv4Addr::new(10, 0, 100, 255)));
        let err = "10.0.100.5/24".parse::<Cidr>().unwrap_err();
        assert!(err.contains("did you mean 10.0.100.0/24"), "{err}");
        assert!("10.0.100.0/33".parse::<Cidr>().is_err());
        assert!("10.0.100.0".parse::<Cidr>().is_err());
    }

    #[test]
    fn mac_forms() {
        let m: Mac = "52:54:00:AB:cd:EF".parse().unwrap();
        assert_eq!(m.as_str(), "52:54:00:ab:cd:ef");
        assert_eq!(m.dashed(), "52-54-00-ab-cd-ef");
        assert!("52:54:00:12:34".parse::<Mac>().is_err());
        assert!("52-54-00-12-34-56".parse::<Mac>().is_err());
        assert!("01:00:5e:00:00:01".parse::<Mac>().is_err());
        assert_eq!(Mac::parse_any_separator("52-54-00-AB-cd-ef").unwrap(), m);
        assert_eq!(Mac::parse_any_separator("52-54-00-AB-cd-ef").unwrap(), m);
    }
}
