//! The address a service registers: the first interface spec that matches one of the
//! container's addresses (`getifaddrs`), as ContainerPilot picks it.

use std::net::IpAddr;

use crate::supervisor::config::InterfaceSpec;

/// An interface's address, in the order the kernel lists them.
pub struct Address {
    pub interface: String,
    pub ip: IpAddr,
}

pub fn addresses() -> Vec<Address> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs(3) fills a linked list that we walk read-only and then free.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut entry = list;
        while !entry.is_null() {
            let item = &*entry;
            entry = item.ifa_next;
            if item.ifa_addr.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(item.ifa_name)
                .to_string_lossy()
                .into_owned();
            let ip = match i32::from((*item.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let v4 = &*(item.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes())
                }
                libc::AF_INET6 => {
                    let v6 = &*(item.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::from(v6.sin6_addr.s6_addr)
                }
                _ => continue,
            };
            found.push(Address {
                interface: name,
                ip,
            });
        }
        libc::freeifaddrs(list);
    }
    found
}

/// The IP of the first spec that matches; an error names the specs and what there is.
pub fn pick(specs: &[InterfaceSpec], available: &[Address]) -> Result<String, String> {
    for spec in specs {
        let hit = match spec {
            InterfaceSpec::Static(ip) => Some(*ip),
            InterfaceSpec::AnyV4 => available
                .iter()
                .find(|a| a.ip.is_ipv4() && !a.ip.is_loopback())
                .map(|a| a.ip),
            InterfaceSpec::AnyV6 => available
                .iter()
                .find(|a| a.ip.is_ipv6() && !a.ip.is_loopback())
                .map(|a| a.ip),
            InterfaceSpec::Named { name, ipv6 } => available
                .iter()
                .find(|a| &a.interface == name && a.ip.is_ipv6() == *ipv6)
                .map(|a| a.ip),
            InterfaceSpec::Indexed { name, index } => available
                .iter()
                .filter(|a| &a.interface == name)
                .nth(*index)
                .map(|a| a.ip),
            InterfaceSpec::Cidr { network, prefix } => available
                .iter()
                .find(|a| in_network(a.ip, *network, *prefix))
                .map(|a| a.ip),
        };
        if let Some(ip) = hit {
            return Ok(ip.to_string());
        }
    }
    let there: Vec<String> = available
        .iter()
        .map(|a| format!("{}:{}", a.interface, a.ip))
        .collect();
    Err(format!(
        "none of the interface specifications were able to match {specs:?}; the container has [{}]",
        there.join(" ")
    ))
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}
