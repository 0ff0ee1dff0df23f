//! Kernel threads and a round-robin scheduler, preempted by the timer.
//!
//! Each thread runs on a stack slot (`crate::stacks`) whose index is also its context id for
//! `arch::x86_64::context`. The boot path is thread 1 ("main") on the boot stack. The
//! scheduler lock is only ever held with interrupts disabled, and never across a switch.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use core::sync::atomic::AtomicU64;
use spin::Mutex;
use stacklab_core::stack_layout::Policy;

use crate::arch::x86_64::context::{self, BOOT_CONTEXT};
use crate::arch::x86_64::{cpu, pic};
use crate::stacks::{self, StackError, ThreadStack};

/// A thread id.
pub type Tid = u64;

/// The boot path's thread id.
pub const MAIN_TID: Tid = 1;

/// Timer ticks a thread runs before it is preempted.
pub const QUANTUM_TICKS: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ready,
    Running,
    Blocked,
    Sleeping { until: u64 },
    Exited,
}

type Entry = Box<dyn FnOnce() -> u64 + Send>;

struct Thread {
    state: State,
    /// `None` for the main thread (boot stack).
    stack: Option<ThreadStack>,
    entry: Option<Entry>,
    result: u64,
    joiner: Option<Tid>,
    /// The stack policy it was spawned with (`None` for the main thread).
    policy: Option<Policy>,
}

impl Thread {
    fn context(&self) -> usize {
        self.stack
            .as_ref()
            .map_or(BOOT_CONTEXT, ThreadStack::context)
    }
}

struct Sched {
    threads: BTreeMap<Tid, Thread>,
    ready: VecDeque<Tid>,
    next_id: Tid,
    current: Tid,
    quantum_start: u64,
    switches: u64,
    preemptions: u64,
}

static SCHED: Mutex<Sched> = Mutex::new(Sched {
    threads: BTreeMap::new(),
    ready: VecDeque::new(),
    next_id: MAIN_TID + 1,
    current: MAIN_TID,
    quantum_start: 0,
    switches: 0,
    preemptions: 0,
});

/// The running thread's id, updated by the context switch itself.
static CURRENT: AtomicU64 = AtomicU64::new(MAIN_TID);

/// Registers the boot path as the main thread. Call once, on the boot stack.
pub fn init() {
    cpu::without_interrupts(|| {
        let mut s = SCHED.lock();
        s.threads.insert(
            MAIN_TID,
            Thread {
                state: State::Running,
                stack: None,
                entry: None,
                result: 0,
                joiner: None,
                policy: None,
            },
        );
    });
}

/// Why a thread could not be spawned.
pub type SpawnError = StackError;

/// Starts a thread running `f` on a stack of the given policy.
pub fn spawn<F>(name: &str, policy: Policy, f: F) -> Result<Tid, SpawnError>
where
    F: FnOnce() -> u64 + Send + 'static,
{
    let tid = cpu::without_interrupts(|| {
        let mut s = SCHED.lock();
        let id = s.next_id;
        s.next_id += 1;
        id
    });
    let mut stack = stacks::create(policy, tid, name)?;
    stacks::reserve_refill();
    let id = stack.context();
    context::new_thread(id, &mut stack.owned, thread_main, tid);
    let t = Thread {
        state: State::Ready,
        stack: Some(stack),
        entry: Some(Box::new(f)),
        result: 0,
        joiner: None,
        policy: Some(policy),
    };
    cpu::without_interrupts(|| {
        let mut s = SCHED.lock();
        s.threads.insert(tid, t);
        s.ready.push_back(tid);
    });
    Ok(tid)
}

extern "sysv64" fn thread_main(tid: u64) -> ! {
    let entry = cpu::without_interrupts(|| {
        SCHED
            .lock()
            .threads
            .get_mut(&tid)
            .and_then(|t| t.entry.take())
    });
    cpu::enable_interrupts();
    let result = entry.map_or(0, |f| f());
    exit(result)
}

/// Ends the running thread with `result` (returned by `join`).
pub fn exit(result: u64) -> ! {
    cpu::without_interrupts(|| {
        {
            let mut s = SCHED.lock();
            let cur = s.current;
            let joiner = {
                let t = s.threads.get_mut(&cur).expect("current thread exists");
                t.state = State::Exited;
                t.result = result;
                t.joiner
            };
            if let Some(j) = joiner {
                make_ready(&mut s, j);
            }
        }
        schedule();
    });
    unreachable!("an exited thread was scheduled again")
}

fn make_ready(s: &mut Sched, tid: Tid) {
    if let Some(t) = s.threads.get_mut(&tid)
        && matches!(t.state, State::Blocked | State::Sleeping { .. })
    {
        t.state = State::Ready;
        s.ready.push_back(tid);
    }
}

/// What `join` learned about a finished thread.
#[derive(Clone, Copy, Debug)]
pub struct Joined {
    /// What the thread's closure returned.
    pub result: u64,
    /// Growth events over the thread's life.
    pub grow_events: u64,
    /// Pages those growth events mapped.
    pub grow_pages: u64,
    /// Stack high-water mark in bytes.
    pub high_water: u64,
    /// Pages the stack had mapped when the thread ended.
    pub pages: u64,
}

/// Waits for `tid` to exit, frees its stack, and returns its result. `None` if there is no
/// such thread (or someone else joined it).
pub fn join(tid: Tid) -> Option<Joined> {
    loop {
        let done = cpu::without_interrupts(|| {
            let mut s = SCHED.lock();
            let cur = s.current;
            let t = s.threads.get_mut(&tid)?;
            if t.state == State::Exited {
                let t = s.threads.remove(&tid).expect("present");
                return Some(Some(t));
            }
            if t.joiner.is_some_and(|j| j != cur) {
                return Some(None);
            }
            t.joiner = Some(cur);
            s.threads.get_mut(&cur).expect("current exists").state = State::Blocked;
            None
        });
        match done {
            Some(Some(t)) => {
                let r = t.stack.map(stacks::release);
                return Some(Joined {
                    result: t.result,
                    grow_events: r.map_or(0, |r| r.grow_events),
                    grow_pages: r.map_or(0, |r| r.grow_pages),
                    high_water: r.map_or(0, |r| r.high_water),
                    pages: r.map_or(0, |r| r.pages),
                });
            }
            Some(None) => return None,
            None => cpu::without_interrupts(schedule),
        }
    }
}

/// Gives the CPU to the next ready thread, if any.
pub fn yield_now() {
    cpu::without_interrupts(|| {
        {
            let mut s = SCHED.lock();
            let cur = s.current;
            s.threads.get_mut(&cur).expect("current exists").state = State::Ready;
            s.ready.push_back(cur);
        }
        schedule();
    });
}

/// Sleeps for at least `ms` milliseconds of timer ticks.
pub fn sleep_ms(ms: u64) {
    let until = pic::ticks() + ms * pic::TIMER_HZ as u64 / 1000;
    cpu::without_interrupts(|| {
        {
            let mut s = SCHED.lock();
            let cur = s.current;
            s.threads.get_mut(&cur).expect("current exists").state = State::Sleeping { until };
        }
        schedule();
    });
}

/// Blocks the running thread until `wake` is called for it.
pub fn block() {
    cpu::without_interrupts(|| {
        {
            let mut s = SCHED.lock();
            let cur = s.current;
            s.threads.get_mut(&cur).expect("current exists").state = State::Blocked;
        }
        schedule();
    });
}

/// Makes a blocked thread ready.
pub fn wake(tid: Tid) {
    cpu::without_interrupts(|| make_ready(&mut SCHED.lock(), tid));
}

/// Switches to the next ready thread. The caller has set the current thread's state (and put
/// it on the ready queue if it stays runnable). Interrupts must be off. When nothing is ready,
/// idles with interrupts on until something is.
fn schedule() {
    let (from, to, next) = loop {
        let picked = {
            let mut s = SCHED.lock();
            let cur = s.current;
            match s.ready.pop_front() {
                Some(next) => {
                    let from = s.threads.get(&cur).expect("current exists").context();
                    let t = s.threads.get_mut(&next).expect("ready thread exists");
                    t.state = State::Running;
                    let to = t.context();
                    s.current = next;
                    s.quantum_start = pic::ticks();
                    if next != cur {
                        s.switches += 1;
                    }
                    Some((from, to, next, cur))
                }
                None => None,
            }
        };
        match picked {
            Some((from, to, next, cur)) if next != cur => break (from, to, next),
            Some(_) => return,
            // Idle on the current stack; the timer wakes sleepers.
            None => {
                cpu::wait_for_interrupt();
                x86_64::instructions::interrupts::disable();
            }
        }
    };
    // Growth frames are replenished here, in process context, never in the fault path.
    stacks::reserve_refill();
    context::switch(from, to, &CURRENT, next);
}

/// Timer hook (interrupts are off): wakes sleepers and preempts at the end of a quantum.
pub fn on_tick() {
    let now = pic::ticks();
    let preempt = {
        let Some(mut s) = SCHED.try_lock() else {
            return;
        };
        let Sched { threads, ready, .. } = &mut *s;
        for (id, t) in threads.iter_mut() {
            if matches!(t.state, State::Sleeping { until } if until <= now) {
                t.state = State::Ready;
                ready.push_back(*id);
            }
        }
        let cur = s.current;
        let running = s
            .threads
            .get(&cur)
            .is_some_and(|t| t.state == State::Running);
        if running && !s.ready.is_empty() && now - s.quantum_start >= QUANTUM_TICKS {
            s.threads.get_mut(&cur).expect("current exists").state = State::Ready;
            s.ready.push_back(cur);
            s.preemptions += 1;
            true
        } else {
            false
        }
    };
    if preempt {
        schedule();
    }
}

/// The scheduler's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedStats {
    /// Context switches since boot.
    pub switches: u64,
    /// Switches the timer forced.
    pub preemptions: u64,
    /// Threads that exist (the boot thread included).
    pub live: u64,
}

/// The scheduler's counters now.
pub fn stats() -> SchedStats {
    cpu::without_interrupts(|| {
        let s = SCHED.lock();
        SchedStats {
            switches: s.switches,
            preemptions: s.preemptions,
            live: s.threads.len() as u64,
        }
    })
}

/// Stack pages of the live threads (the boot thread's excluded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackPages {
    /// Pages mapped.
    pub mapped: u64,
    /// The lower bound: each stack's high-water mark rounded up to pages.
    pub needed: u64,
}

/// Stack pages of the live threads; meant for parked threads.
pub fn live_stack_pages() -> StackPages {
    cpu::without_interrupts(|| {
        let s = SCHED.lock();
        s.threads
            .values()
            .filter_map(|t| t.stack.as_ref())
            .fold(StackPages::default(), |p, st| StackPages {
                mapped: p.mapped + st.mapped_pages(),
                needed: p.needed + st.live_high_water().div_ceil(4096),
            })
    })
}

/// One live thread, as the shell's `threads` and `stacks` commands show it.
#[derive(Clone, Copy, Debug)]
pub struct ThreadView {
    /// Its id.
    pub tid: Tid,
    /// `running`, `ready`, `blocked`, `sleeping` or `exited` (not yet joined).
    pub state: &'static str,
    /// Its stack policy (`None`: the main thread on the boot stack).
    pub policy: Option<Policy>,
    /// The top of its stack slot (`None`: the boot stack).
    pub slot_top: Option<u64>,
}

/// Every live thread, in id order.
pub fn snapshot() -> alloc::vec::Vec<ThreadView> {
    cpu::without_interrupts(|| {
        let s = SCHED.lock();
        s.threads
            .iter()
            .map(|(&tid, t)| ThreadView {
                tid,
                state: match t.state {
                    State::Ready => "ready",
                    State::Running => "running",
                    State::Blocked => "blocked",
                    State::Sleeping { .. } => "sleeping",
                    State::Exited => "exited",
                },
                policy: t.policy,
                slot_top: t.stack.as_ref().map(|st| st.slot.top),
            })
            .collect()
    })
}
