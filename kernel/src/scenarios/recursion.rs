//! The recursion kit: a recursion whose every frame holds a buffer that is filled on the way
//! down and summed on the way up, and the closed form of its result, so a frame lost or
//! overwritten anywhere in the chain changes the answer.

use core::hint::black_box;

use crate::time;

/// Frame buffer sizes `recurse` accepts (one compiled function each).
pub const FRAME_SIZES: [u64; 10] = [32, 64, 128, 256, 512, 1024, 2048, 3072, 4096, 8192];

/// One level's contribution to the checksum: a function of the depth and byte index.
pub(super) fn byte(depth: u64, i: usize) -> u8 {
    (depth.wrapping_mul(131).wrapping_add(i as u64 * 7) % 251) as u8
}

pub(super) fn mix(acc: u64, level_sum: u64) -> u64 {
    acc.wrapping_mul(0x100_0000_01b3).wrapping_add(level_sum)
}

/// Recurses `depth` levels with an `N`-byte buffer per frame. Each level fills its buffer,
/// recurses, and only then sums the buffer, so a frame lost or overwritten by a deeper one
/// changes the result. Optionally spins `spin_ms` at the bottom (to be preempted there).
#[inline(never)]
fn rec<const N: usize>(depth: u64, spin_ms: u64) -> u64 {
    let mut buf = [0u8; N];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte(depth, i);
    }
    black_box(&mut buf);
    let below = if depth == 0 {
        if spin_ms > 0 {
            time::spin_ms(spin_ms);
        }
        0
    } else {
        rec::<N>(depth - 1, spin_ms)
    };
    let sum: u64 = black_box(&buf).iter().map(|b| *b as u64).sum();
    mix(below, sum)
}

/// Stack bytes `recurse(depth, frame)` needs below its caller: the buffer plus about 64 bytes
/// of frame overhead per level, plus a margin (what `ensure_stack` is asked for).
pub fn stack_need(depth: u64, frame: u64) -> u64 {
    (depth + 1) * (frame + 64) + 1024
}

/// The value `rec::<N>(depth)` must return, computed without recursion.
pub fn expected(depth: u64, frame: u64) -> u64 {
    let mut acc = 0;
    for d in 0..=depth {
        let sum: u64 = (0..frame as usize).map(|i| byte(d, i) as u64).sum();
        acc = mix(acc, sum);
    }
    acc
}

/// Runs the recursion for a supported frame size; `None` for other sizes.
pub fn recurse(depth: u64, frame: u64, spin_ms: u64) -> Option<u64> {
    Some(match frame {
        32 => rec::<32>(depth, spin_ms),
        64 => rec::<64>(depth, spin_ms),
        128 => rec::<128>(depth, spin_ms),
        256 => rec::<256>(depth, spin_ms),
        512 => rec::<512>(depth, spin_ms),
        1024 => rec::<1024>(depth, spin_ms),
        2048 => rec::<2048>(depth, spin_ms),
        3072 => rec::<3072>(depth, spin_ms),
        4096 => rec::<4096>(depth, spin_ms),
        8192 => rec::<8192>(depth, spin_ms),
        _ => return None,
    })
}
