//! Prints N short numbered lines to stdout as fast as it can (64 KiB writes), then writes its
//! own run time in nanoseconds to the file named by its second argument. Used by the
//! log-throughput benchmark: the same program runs under Aurelia and with stdout on /dev/null.

use std::io::Write;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let out_file = args.get(2).cloned();
    let t = Instant::now();
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    for i in 1..=n {
        // itoa by hand keeps the generator itself cheap
        let mut buf = [0u8; 24];
        let mut p = buf.len() - 1;
        buf[p] = b'\n';
        let mut v = i;
        loop {
            p -= 1;
            buf[p] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if w.write_all(&buf[p..]).is_err() {
            std::process::exit(1);
        }
    }
    if w.flush().is_err() {
        std::process::exit(1);
    }
    let ns = t.elapsed().as_nanos();
    if let Some(f) = out_file {
        let _ = std::fs::write(f, ns.to_string());
    }
}
