//! UDX sequence numbers: `u32` packet counters (not bytes) that wrap, compared as C
//! libudx does (`(int32_t)(a - b)`): `a` is before `b` when the signed distance from
//! `b` to `a` is negative, so comparisons hold across the wrap for any two numbers
//! less than 2^31 apart.

use std::cmp::Ordering;

/// How `a` compares with `b` in sequence space.
pub fn cmp(a: u32, b: u32) -> Ordering {
    (a.wrapping_sub(b) as i32).cmp(&0)
}

/// `a` is before `b`.
pub fn lt(a: u32, b: u32) -> bool {
    cmp(a, b) == Ordering::Less
}

/// `a` is before `b` or equal to it.
pub fn le(a: u32, b: u32) -> bool {
    cmp(a, b) != Ordering::Greater
}

/// How many sequence numbers lie from `from` up to `to` (`to - from`, across the wrap);
/// 0 when `to` is not after `from`.
pub fn distance(from: u32, to: u32) -> u32 {
    if lt(from, to) {
        to.wrapping_sub(from)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_hold_across_the_wrap() {
        assert!(lt(1, 2));
        assert!(lt(u32::MAX, 0));
        assert!(lt(u32::MAX - 5, 3));
        assert!(!lt(3, u32::MAX - 5));
        assert!(le(7, 7) && !lt(7, 7));
        assert_eq!(distance(u32::MAX - 1, 2), 4);
        assert_eq!(distance(5, 5), 0);
        assert_eq!(distance(6, 5), 0);
    }
}
