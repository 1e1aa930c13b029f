//! The `forkguard` command: run a program under the library, check a config,
//! audit a program's forks, explain a stuck process (SPEC §6, §8.6).

mod check;
mod launch;
mod pycheck;
mod suggest;
mod why;

use clap::{Args, Parser, Subcommand, ValueEnum};
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

/// What `run` and `audit` share: the config, the log, and the program.
#[derive(Args)]
struct Launch {
    /// Config file (else FORKGUARD_CONFIG, else /etc/forkguard/forkguard.toml).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<String>,
    /// Log (or report) destination: off, stderr or an absolute file path.
    #[arg(long, value_name = "DEST")]
    log: Option<String>,
    /// Line format.
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
}

#[derive(Subcommand)]
enum Command {
    /// Run CMD with libforkguard.so preloaded and the config set.
    /// FORKGUARD_DISABLE=1 in the environment still turns every phase off
    /// (the library stays loaded, a pure pass-through).
    Run(Launch),
    /// Validate a config and print the resolved plan, phase by phase.
    Check {
        /// Config file (else FORKGUARD_CONFIG, else /etc/forkguard/forkguard.toml).
        file: Option<String>,
        /// Also check that every symbol resolves in this program and its libraries.
        #[arg(long, value_name = "PATH")]
        program: Option<String>,
    },
    /// Run CMD changing nothing, and report each fork's hazards (to stderr
    /// unless --log says otherwise).
    Audit {
        /// Write a config that guards what was seen to OUT (atomically).
        #[arg(long, value_name = "OUT")]
        suggest: Option<String>,
        #[command(flatten)]
        launch: Launch,
    },
    /// Explain a stuck process: what each thread waits on, which lock, who
    /// holds it, and the config line that prevents it. Exit 0: a cause was
    /// found; 1: nothing is stuck; 2: the process could not be looked at.
    Why {
        /// The process id.
        pid: i32,
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
        Command::Run(l) => launch(launch::Mode::Run, l),
        Command::Audit { suggest, launch: l } => match suggest {
            None => launch(launch::Mode::Audit, l),
            Some(out) => launch(launch::Mode::Suggest(out), l),
        },
        Command::Check { file, program } => check::run(file.as_deref(), program.as_deref()),
        Command::Why { pid } => why::run(pid),
    }
}

fn launch(mode: launch::Mode, l: Launch) -> ExitCode {
    launch::exec(
        mode,
        l.config.as_deref(),
        l.log.as_deref(),
        format_name(l.format),
        &l.cmd,
    )
}
