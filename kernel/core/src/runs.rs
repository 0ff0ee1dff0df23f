//! Runs of equal values. A backtrace of a deep recursion is one return address repeated
//! hundreds of times; both the kernel's raw report and the host's rendering print such a run
//! once, with its length.

/// `len` consecutive entries equal to `value`, starting at index `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Index of the first entry.
    pub first: usize,
    /// The repeated value.
    pub value: u64,
    /// How many entries.
    pub len: usize,
}

impl Run {
    /// Whether the repeats after the first entry are worth folding into one line (two or
    /// more; a single repeat is clearer printed as itself).
    pub fn folds(&self) -> bool {
        self.len >= 3
    }
}

/// The maximal runs of `xs`, in order.
pub fn runs(xs: &[u64]) -> impl Iterator<Item = Run> + '_ {
    let mut i = 0;
    core::iter::from_fn(move || {
        let value = *xs.get(i)?;
        let len = xs[i..].iter().take_while(|x| **x == value).count();
        let run = Run {
            first: i,
            value,
            len,
        };
        i += len;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn r(first: usize, value: u64, len: usize) -> Run {
        Run { first, value, len }
    }

    #[test]
    fn empty_list_has_no_runs() {
        assert_eq!(runs(&[]).count(), 0);
    }

    #[test]
    fn runs_cover_the_list_in_order() {
        let xs = [1, 2, 2, 2, 2, 3, 3, 1];
        let got: Vec<Run> = runs(&xs).collect();
        assert_eq!(got, [r(0, 1, 1), r(1, 2, 4), r(5, 3, 2), r(7, 1, 1)]);
        assert_eq!(got.iter().map(|r| r.len).sum::<usize>(), xs.len());
        let folded: Vec<bool> = got.iter().map(Run::folds).collect();
        assert_eq!(folded, [false, true, false, false]);
    }

    #[test]
    fn one_value_repeated_is_one_run() {
        let xs = [7u64; 300];
        assert_eq!(runs(&xs).collect::<Vec<_>>(), [r(0, 7, 300)]);
    }
}
