//! The command line (from fw_cfg `opt/stacklab/cmdline`) and the command registry.
//!
//! Every command is one [`Command`] row, defined next to the code it runs (a `COMMANDS` table
//! in each scenario file and in [`settings`]), with its argument specification
//! (`stacklab_core::cmdspec`), one line of help and an example. Dispatch is a lookup in
//! [`GROUPS`]; `help` prints the same rows, so the two cannot disagree; and the dispatcher
//! stamps the command's name into every `result` record it writes (`report::result`).
//! Adding a scenario is one function and one row in one file.

pub mod settings;
pub mod shell;

use stacklab_core::cmdline::{self, ArgError};
use stacklab_core::cmdspec::{Bound, Spec};
use stacklab_core::proto::ExitCode;

use crate::{report, scenarios};

/// One registered command.
pub struct Command {
    /// What the user types.
    pub name: &'static str,
    /// Its arguments (see `stacklab_core::cmdspec` for the grammar).
    pub args: Spec,
    /// One line for `help`.
    pub help: &'static str,
    /// A command line that runs it, checked to parse by `help` and a host test.
    pub example: &'static str,
    /// The code it runs, with the arguments bound to `args`.
    pub run: for<'a> fn(&mut Call<'a>) -> Result<(), ArgError<'a>>,
}

/// Defines a [`Command`] row: `command!(name, args, help, example, function)`, the four first
/// as string literals, so the host test that reads the registry from the source finds them.
macro_rules! command {
    ($name:literal, $args:literal, $help:literal, $example:literal, $run:expr $(,)?) => {
        $crate::commands::Command {
            name: $name,
            args: stacklab_core::cmdspec::Spec($args),
            help: $help,
            example: $example,
            run: $run,
        }
    };
}
pub(crate) use command;

/// One call of a command: its text and its bound arguments.
pub struct Call<'a> {
    /// The whole command as typed (for error records).
    pub text: &'a str,
    /// The arguments, bound to the row's specification.
    pub args: Bound<'a>,
}

impl<'a> Call<'a> {
    /// The `i`th argument as a number.
    pub fn number(&self, i: usize) -> u64 {
        self.args.number(i)
    }

    /// The `i`th argument as a word.
    pub fn word(&self, i: usize) -> &'a str {
        self.args.word(i)
    }

    /// Reports a bad command whose arguments parsed but make no sense (the kernel goes on).
    pub fn refuse(&self, msg: core::fmt::Arguments<'_>) {
        report::bad_command(self.text, msg);
    }
}

/// Every command, grouped by the file that defines it, in `help` order.
pub const GROUPS: &[&[Command]] = &[
    settings::COMMANDS,
    scenarios::basic::COMMANDS,
    scenarios::threads::COMMANDS,
    scenarios::hazards::COMMANDS,
    scenarios::races::COMMANDS,
    scenarios::edge::COMMANDS,
    scenarios::bench::COMMANDS,
    scenarios::fred_sim::COMMANDS,
    scenarios::catalogue::COMMANDS,
    scenarios::df_hazards::COMMANDS,
    shell::COMMANDS,
];

/// Every command, in `help` order.
pub fn all() -> impl Iterator<Item = &'static Command> {
    GROUPS.iter().flat_map(|g| g.iter())
}

/// The command called `name`.
pub fn find(name: &str) -> Option<&'static Command> {
    all().find(|c| c.name == name)
}

/// Runs every command of `line`, then exits with the worst outcome.
pub fn run_all(line: &str) -> ! {
    run_line(line);
    report::exit(ExitCode::Success)
}

/// Runs every command of `line` in order.
pub fn run_line(line: &str) {
    for c in cmdline::commands(line) {
        run(c);
    }
}

fn run(c: cmdline::Command<'_>) {
    let Some(cmd) = find(c.name) else {
        report::bad_command(
            c.name,
            format_args!("unknown command '{}' (try 'help')", c.name),
        );
        return;
    };
    let outer = report::set_command(cmd.name);
    let res = cmd.args.bind(c.args()).and_then(|args| {
        let mut call = Call { text: c.text, args };
        (cmd.run)(&mut call)
    });
    if let Err(e) = res {
        report::bad_command(c.text, format_args!("{e}"));
    }
    report::set_command(outer);
}
