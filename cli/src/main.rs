//! The `forkguard` command: run a program under the library, check a config,
//! audit a program's forks (SPEC §6).

mod check;
mod launch;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "forkguard",
    version,
    about = "Make fork() safe for threaded programs, from outside"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run CMD with libforkguard.so preloaded and the config set.
    Run {
        /// Config file (else FORKGUARD_CONFIG, else /etc/forkguard/forkguard.toml).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<String>,
        /// Log destination: off, stderr or an absolute file path.
        #[arg(long, value_name = "DEST")]
        log: Option<String>,
        /// Log line format.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// The program and its arguments.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        cmd: Vec<String>,
    },
    /// Validate a config and print the resolved plan, phase by phase.
    Check {
        /// Config file (else FORKGUARD_CONFIG, else /etc/forkguard/forkguard.toml).
        file: Option<String>,
        /// Also check that every symbol resolves in this program and its libraries.
        #[arg(long, value_name = "PATH")]
        program: Option<String>,
    },
    /// Run CMD changing nothing, and report each fork's hazards.
    Audit {
        /// Config whose locks and fd actions to check at each fork.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<String>,
        /// Where the report goes: stderr (default) or an absolute file path.
        #[arg(long, value_name = "DEST")]
        log: Option<String>,
        /// Report line format.
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        cmd: Vec<String>,
    },
}

fn format_name(f: Option<Format>) -> Option<&'static str> {
    f.map(|f| match f {
        Format::Text => "text",
        Format::Json => "json",
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            log,
            format,
            cmd,
        } => launch::exec(
            launch::Mode::Run,
            config.as_deref(),
            log.as_deref(),
            format_name(format),
            &cmd,
        ),
        Command::Audit {
            config,
            log,
            format,
            cmd,
        } => launch::exec(
            launch::Mode::Audit,
            config.as_deref(),
            log.as_deref(),
            format_name(format),
            &cmd,
        ),
        Command::Check { file, program } => check::run(file.as_deref(), program.as_deref()),
    }
}
