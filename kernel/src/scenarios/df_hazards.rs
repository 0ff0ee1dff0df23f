//! The hazard catalogue's own scenarios (see `catalogue`).

use crate::commands::Command;

/// The commands of this file.
pub const COMMANDS: &[Command] = &[];
