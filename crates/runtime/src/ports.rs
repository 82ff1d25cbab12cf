//! Free TCP ports on 127.0.0.1 for programs started side by side (`tongban local
//! --free-ports`, the tests).
//!
//! Ports are looked for below the kernel's ephemeral range (32768–60999 on Linux): a port from
//! `bind(0)` lies in that range, where any outgoing connection may take it as its local port
//! between the check and the bind by the program it was chosen for.

use std::{
    net::TcpListener,
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
};

const LOW: u32 = 20_000;
const SPAN: u32 = 12_000;

/// A port to try; processes start at different places (pid and clock), then walk the range.
fn candidate() -> u16 {
    static SEED: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = *SEED.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        std::process::id().wrapping_mul(2_654_435_761) ^ nanos
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    u16::try_from(LOW + seed.wrapping_add(n.wrapping_mul(7_919)) % SPAN).unwrap_or(20_000)
}

/// `n` distinct free ports, still bound (drop the listeners to release them).
pub fn free(n: usize) -> anyhow::Result<Vec<TcpListener>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..20_000 {
        if held.len() == n {
            break;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", candidate())) {
            held.push(l);
        }
    }
    anyhow::ensure!(held.len() == n, "found no {n} free ports below 32000");
    Ok(held)
}

/// `len` consecutive free ports starting at the returned base, still bound.
pub fn free_block(len: usize) -> anyhow::Result<(u16, Vec<TcpListener>)> {
    for _ in 0..2_000 {
        let base = candidate();
        if usize::from(base) + len > 32_000 {
            continue;
        }
        let held: Result<Vec<_>, _> = (0..len)
            .map(|i| TcpListener::bind(("127.0.0.1", base + i as u16)))
            .collect();
        if let Ok(held) = held {
            return Ok((base, held));
        }
    }
    anyhow::bail!("found no {len} consecutive free ports")
}

/// The port numbers of `listeners`.
pub fn numbers(listeners: &[TcpListener]) -> anyhow::Result<Vec<u16>> {
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}
