//! Read a data set and report how long it took:
//! `cargo run --release --example data_info -- [PATH]` (no PATH: what `load` finds offline).
//! Used to measure reading the real Fashion-MNIST (`/usr/share/datasets/fashion-mnist`).

use std::path::PathBuf;
use std::time::Instant;

use cifar_wgpu::data::{self, DataOptions, DatasetSummary};

fn main() {
    let opts = DataOptions {
        data: std::env::args_os().nth(1).map(PathBuf::from),
        offline: true,
        ..DataOptions::default()
    };
    let start = Instant::now();
    let ds = match data::load(&opts) {
        Ok(ds) => ds,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let elapsed = start.elapsed();
    let s = DatasetSummary::of(&ds);
    println!("{} from {}", s.name, s.source.display());
    println!(
        "  {}x{}x{}, {} classes: {}",
        s.height,
        s.width,
        s.channels,
        s.class_names.len(),
        s.class_names.join(", ")
    );
    println!(
        "  train {} (per class {:?}), test {} (per class {:?})",
        s.train, s.train_per_class, s.test, s.test_per_class
    );
    println!(
        "  read in {:.3} s ({} image bytes)",
        elapsed.as_secs_f64(),
        ds.train.images.len() + ds.test.images.len()
    );
}
