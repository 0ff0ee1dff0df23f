//! The program generator: from a seed and a run index, a kernel command line of registered
//! scenarios with random parameters, and what that program must do.
//!
//! A program is `jitter SEED'; policy P; growth M;` then a few commands sized to stay well
//! inside the stack the policy and growth mode give a thread, and sometimes, as its last
//! command only, a recursion sized to overflow it at least twice over: such a program must
//! end in the kernel's `stack-overflow` abort report ([`Expect::Abort`]).
//!
//! `ticks` is never drawn: it checks the count of timer interrupts against the unjittered
//! 1 kHz rate, which the jitter every program starts with deliberately breaks.

use stacklab_core::jitter::splitmix64;

/// The stack policies a program may set, as the kernel's `policy` command spells them.
pub const POLICIES: [&str; 3] = ["fixed 16K", "fixed 32K", "grow 4K 32K"];
/// The growth modes a program may set.
pub const MODES: [&str; 4] = ["pf-ist", "df-recover", "fred-sim", "abort"];
/// The abort reason a deliberate overflow must report.
pub const OVERFLOW_REASON: &str = "stack-overflow";
/// Frame sizes the kernel's `recurse` and `ensure` accept.
const FRAMES: [u64; 10] = [32, 64, 128, 256, 512, 1024, 2048, 3072, 4096, 8192];
/// Stack bytes one recursion level costs beyond its buffer, as an upper bound (return
/// address, saved registers, alignment).
const LEVEL_OVERHEAD: u64 = 160;
/// Stack bytes a thread uses before its first recursion level, as an upper bound.
const BASE_USE: u64 = 2048;

/// A deterministic pseudo-random sequence (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The sequence of `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }
    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, of: &'a [T]) -> &'a T {
        &of[self.range(0, of.len() as u64 - 1) as usize]
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 99) < percent
    }
}

/// What a program must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every `result` ok and the kernel exits `success`.
    Ok,
    /// Every `result` before the end ok, then an `abort` record with this reason.
    Abort(String),
}

impl Expect {
    /// `ok` or `abort:REASON` (the JSON files' spelling).
    pub fn name(&self) -> String {
        match self {
            Expect::Ok => "ok".into(),
            Expect::Abort(r) => format!("abort:{r}"),
        }
    }
    /// Parses [`Expect::name`]'s spelling.
    pub fn parse(s: &str) -> Option<Expect> {
        match s {
            "ok" => Some(Expect::Ok),
            _ => s
                .strip_prefix("abort:")
                .filter(|r| !r.is_empty())
                .map(|r| Expect::Abort(r.into())),
        }
    }
}

/// How programs are drawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// The policies to draw from (a subset of [`POLICIES`]).
    pub policies: Vec<String>,
    /// The growth modes to draw from (a subset of [`MODES`]).
    pub modes: Vec<String>,
    /// Most commands between the settings and the optional final overflow.
    pub max_body: u64,
    /// Chance in percent that a program ends with a deliberate overflow.
    pub overflow_percent: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            policies: POLICIES.iter().map(|s| s.to_string()).collect(),
            modes: MODES.iter().map(|s| s.to_string()).collect(),
            max_body: 6,
            overflow_percent: 30,
        }
    }
}

/// One generated program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The seed of the whole stress run.
    pub seed: u64,
    /// This program's index in it.
    pub index: u64,
    /// Its policy (one of [`POLICIES`]).
    pub policy: String,
    /// Its growth mode (one of [`MODES`]).
    pub mode: String,
    /// The commands, in order.
    pub commands: Vec<String>,
    /// What it must do.
    pub expect: Expect,
}

impl Program {
    /// The kernel command line.
    pub fn cmdline(&self) -> String {
        self.commands.join("; ")
    }
}

/// The seed of run `index` of a stress run seeded `seed`.
pub fn run_seed(seed: u64, index: u64) -> u64 {
    let mut s = seed ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03);
    splitmix64(&mut s)
}

/// The stack a thread can use under `policy` and growth `mode`: the fixed size, or for a
/// growable policy its maximum if the mode grows and its initial size under `abort`.
pub fn capacity(policy: &str, mode: &str) -> u64 {
    match policy {
        "fixed 16K" => 16 << 10,
        "fixed 32K" => 32 << 10,
        _ if mode == "abort" => 4 << 10,
        _ => 32 << 10,
    }
}

/// An upper bound of the stack `recurse DEPTH FRAME` uses.
pub fn recursion_use(depth: u64, frame: u64) -> u64 {
    BASE_USE + (depth + 1) * (frame + LEVEL_OVERHEAD)
}

/// A recursion using at most `budget` bytes (`None` if none fits).
fn small_recursion(rng: &mut Rng, budget: u64) -> Option<(u64, u64)> {
    let fits: Vec<u64> = FRAMES
        .iter()
        .copied()
        .filter(|&f| recursion_use(0, f) <= budget)
        .collect();
    if fits.is_empty() {
        return None;
    }
    let frame = *rng.pick(&fits);
    let most = (budget - BASE_USE) / (frame + LEVEL_OVERHEAD) - 1;
    Some((rng.range(0, most), frame))
}

/// One body command, safe for a thread with `cap` bytes of stack under growth `mode` and a
/// growable (`grows`) or fixed policy.
fn body_command(rng: &mut Rng, cap: u64, mode: &str, grows: bool) -> String {
    let budget = cap / 2;
    loop {
        match rng.range(0, 10) {
            0 | 1 => {
                if let Some((d, f)) = small_recursion(rng, budget) {
                    return format!("recurse {d} {f}");
                }
            }
            2 if cap >= 16 << 10 => return format!("threads {}", rng.range(1, 12)),
            3 => {
                let mode = rng.pick(&["pf-ist", "df-recover", "fred-sim"]);
                let event = rng.pick(&["timer", "demand", "int3", "push", "ensure"]);
                let from = rng.range(0, 60) * 8;
                let to = from + rng.range(0, 3) * 8;
                return format!("edge-sweep {mode} {event} {from} {to}");
            }
            4 => return format!("reserve {}", rng.range(16, 64)),
            5 => {
                // ensure() maps what it asks for or is refused (also ok); a growable stack
                // whose mode grows takes up to 16K that way, others stay within the budget.
                let room = if grows && mode != "abort" {
                    16 << 10
                } else {
                    budget
                };
                if let Some((d, f)) = small_recursion(rng, room) {
                    return format!("ensure {d} {f}");
                }
            }
            6 => {
                let levels_fit = budget / 3584;
                if rng.chance(50) {
                    return format!("reclaim {} ensure", rng.range(1, 6));
                }
                if cap >= 16 << 10 {
                    let m = rng.pick(&["plain", "extra"]);
                    return format!("reclaim {} {m}", rng.range(1, levels_fit.clamp(1, 4)));
                }
            }
            7 => return "demand-nested".into(),
            // `hwm` marks the part mapped at the start: under a growable policy its 4K less
            // the 256 bytes the kernel asks to be left.
            8 => {
                let most = if grows {
                    budget.min(4096 - 256)
                } else {
                    budget
                };
                return format!("hwm {}", rng.range(512, most));
            }
            9 if grows && mode != "abort" => return "edge-irq".into(),
            10 => return rng.pick(&["stats", "int3"]).to_string(),
            _ => {}
        }
    }
}

/// The final command that overflows a thread with `cap` bytes of stack at least twice over.
fn overflow_command(rng: &mut Rng, cap: u64) -> String {
    let frame = *rng.pick(&[256u64, 512, 1024, 2048]);
    let depth = 2 * cap / frame + rng.range(0, 16);
    format!("recurse {depth} {frame}")
}

/// Program `index` of a stress run seeded `seed`.
pub fn generate(seed: u64, index: u64, cfg: &GenConfig) -> Program {
    let mut rng = Rng::new(run_seed(seed, index));
    let jitter_seed = rng.next_u64();
    let spread = rng.range(10, 90);
    let policy = rng.pick(&cfg.policies).clone();
    let mode = rng.pick(&cfg.modes).clone();
    let cap = capacity(&policy, &mode);
    let grows = policy.starts_with("grow");
    let mut commands = vec![
        format!("jitter {jitter_seed} {spread}"),
        format!("policy {policy}"),
        format!("growth {mode}"),
    ];
    for _ in 0..rng.range(1, cfg.max_body.max(1)) {
        commands.push(body_command(&mut rng, cap, &mode, grows));
    }
    let expect = if rng.chance(cfg.overflow_percent) {
        commands.push(overflow_command(&mut rng, cap));
        Expect::Abort(OVERFLOW_REASON.into())
    } else {
        Expect::Ok
    };
    Program {
        seed,
        index,
        policy,
        mode,
        commands,
        expect,
    }
}

#[cfg(test)]
mod tests;
