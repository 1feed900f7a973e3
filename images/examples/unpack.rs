//! Unpack one layer file into a directory and report the time taken, for
//! benchmarking against `tar xzf`:
//!
//! ```text
//! cargo run --release -p minirun-images --example unpack -- layer.tar.gz /tmp/dest
//! ```
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(layer), Some(dest), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: unpack LAYER DEST");
        std::process::exit(2);
    };
    let start = Instant::now();
    let file = std::fs::File::open(&layer)?;
    let stats = minirun_images::unpack_layer(file, dest.as_ref())?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{} entries, {} file bytes, {} tar bytes, {:?}, {} in {:.3}s ({:.0} MB/s of tar)",
        stats.entries,
        stats.file_bytes,
        stats.tar_bytes,
        stats.compression,
        stats.diff_id,
        secs,
        stats.tar_bytes as f64 / secs / 1e6
    );
    Ok(())
}
