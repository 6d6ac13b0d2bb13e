//! Dynamic port allocation (`network.port: 0`) and the "port in use" check.
//!
//! A service keeps its port: once allocated, the same port is handed out on every restart of
//! the service and of the daemon (allocations are persisted in the state file) until its spec
//! is removed. A new allocation starts at a position derived from the service name (so a
//! fresh home gives similar ports run to run), skips every other service's static and
//! allocated port, and is only handed out after a bind test says it is free.

use std::collections::BTreeMap;
use std::net::TcpListener;

/// Whether nothing listens on `port` (IPv4 any and loopback).
pub fn is_free(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Why a port could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error(
        "no free port in the range {start}-{end} ({count} ports, all in use or taken by other services); widen port_range in config.yaml"
    )]
    RangeFull { start: u16, end: u16, count: u32 },
    #[error("{0}")]
    InUse(String),
}

/// The message for a static port someone else holds.
pub fn in_use_message(port: u16) -> String {
    match crate::proc::port_holder(port) {
        Some((pid, cmd)) => format!(
            "port {port} is already in use by pid {pid} ({cmd}); stop that process or change network.port"
        ),
        None => format!(
            "port {port} is already in use by another process; stop it or change network.port"
        ),
    }
}

/// Allocations of dynamic ports.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    range: (u16, u16),
    assigned: BTreeMap<String, u16>,
}

impl PortAllocator {
    pub fn new(range: (u16, u16), assigned: BTreeMap<String, u16>) -> PortAllocator {
        PortAllocator { range, assigned }
    }

    pub fn assigned(&self) -> &BTreeMap<String, u16> {
        &self.assigned
    }

    pub fn get(&self, service: &str) -> Option<u16> {
        self.assigned.get(service).copied()
    }

    /// Forgets a service's port (its spec was removed).
    pub fn release(&mut self, service: &str) {
        self.assigned.remove(service);
    }

    /// The port for `service`: its existing allocation when it has one and that port is free or
    /// held by the service itself (`own_pid_alive`), else a new free one. `reserved` are other
    /// services' static ports.
    pub fn allocate(
        &mut self,
        service: &str,
        reserved: &[u16],
        own_process_running: bool,
    ) -> Result<u16, PortError> {
        if let Some(p) = self.assigned.get(service).copied() {
            if own_process_running || is_free(p) {
                return Ok(p);
            }
            tracing::warn!(
                service,
                port = p,
                "{}; allocating another port",
                in_use_message(p)
            );
        }
        let (start, end) = self.range;
        let count = u32::from(end) - u32::from(start) + 1;
        let offset = fnv(service) % count;
        for i in 0..count {
            let p = (u32::from(start) + (offset + i) % count) as u16;
            if reserved.contains(&p) || self.assigned.iter().any(|(s, q)| *q == p && s != service) {
                continue;
            }
            if is_free(p) {
                self.assigned.insert(service.to_string(), p);
                return Ok(p);
            }
        }
        Err(PortError::RangeFull { start, end, count })
    }
}

fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        let mut a = PortAllocator::new((41000, 41999), BTreeMap::new());
        let p1 = a.allocate("api", &[], false).expect("port");
        let p2 = a.allocate("worker", &[], false).expect("port");
        assert_ne!(p1, p2);
        assert_eq!(a.allocate("api", &[], false), Ok(p1));
        assert!((41000..=41999).contains(&p1));
    }

    #[test]
    fn skips_reserved_and_busy() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let busy = l.local_addr().expect("addr").port();
        let mut a = PortAllocator::new((busy, busy), BTreeMap::new());
        assert!(matches!(
            a.allocate("x", &[], false),
            Err(PortError::RangeFull { count: 1, .. })
        ));
        let free_pair = {
            let t = TcpListener::bind("127.0.0.1:0").expect("bind");
            t.local_addr().expect("addr").port()
        };
        let mut b = PortAllocator::new((free_pair, free_pair), BTreeMap::new());
        assert!(
            b.allocate("x", &[free_pair], false).is_err(),
            "reserved static port skipped"
        );
    }

    #[test]
    fn moves_off_a_port_taken_by_a_stranger() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let busy = l.local_addr().expect("addr").port();
        let mut assigned = BTreeMap::new();
        assigned.insert("api".to_string(), busy);
        let mut a = PortAllocator::new((42000, 42999), assigned.clone());
        let p = a.allocate("api", &[], false).expect("port");
        assert_ne!(p, busy);
        let mut b = PortAllocator::new((42000, 42999), assigned);
        assert_eq!(
            b.allocate("api", &[], true),
            Ok(busy),
            "kept while its own process holds it"
        );
    }
}
