//! The `cifar-wgpu` command: a thin layer over the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cifar_wgpu::gpu::{self, BackendChoice};

#[derive(Parser)]
#[command(name = "cifar-wgpu", version, about = "Train convolutional networks on any GPU through WebGPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter wgpu can see, with the limits that matter for training.
    Adapters {
        /// Graphics API to look through (`auto` honours WGPU_BACKEND).
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Adapters { backend } => {
            let adapters = gpu::list_adapters(backend);
            if adapters.is_empty() {
                return Err(gpu::GpuError::NoAdapter {
                    backends: format!("{backend:?}"),
                }
                .into());
            }
            for (i, a) in adapters.iter().enumerate() {
                println!("[{i}] {}", a.details());
            }
            Ok(())
        }
    }
}
