//! Part of the migration bitmap kept as counts: a region is cut into segments, each holding how
//! many of its pages are dirty, spread evenly within it. Exact for what the simulator writes
//! (whole intervals for sequential sweeps, even spreads for uniform writes); memory grows with
//! the number of distinct segments, never with the number of pages.

/// `a * b / d` rounded to nearest (halves up), exact; `d` > 0 and the result fits in u64.
/// In u64 when the product fits (always for regions under 2^32 pages), else in u128: a u128
/// division is a slow library call.
fn mul_div_round(a: u64, b: u64, d: u64) -> u64 {
    match a.checked_mul(b).and_then(|p| p.checked_add(d / 2)) {
        Some(p) => p / d,
        None => ((u128::from(a) * u128::from(b) + u128::from(d / 2)) / u128::from(d)) as u64,
    }
}

/// `[start, next start)` of a region, `dirty` of its pages set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seg {
    start: u64,
    dirty: u64,
}

/// A region's pages `[0, len)` as segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegList {
    segs: Vec<Seg>,
    len: u64,
    dirty: u64,
    /// No two neighbours have the same density (then a take need only merge around what it
    /// touched). `set_range` merges only around its range, so it clears this.
    normalized: bool,
}

impl SegList {
    /// All clean.
    pub fn new(len: u64) -> Self {
        Self {
            segs: vec![Seg { start: 0, dirty: 0 }],
            len,
            dirty: 0,
            normalized: true,
        }
    }

    /// Pages dirty.
    pub fn dirty(&self) -> u64 {
        self.dirty
    }

    /// Pages covered.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty region.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Segments kept (for memory accounting and tests).
    pub fn segments(&self) -> usize {
        self.segs.len()
    }

    /// Every page dirty.
    pub fn fill(&mut self) {
        self.segs.clear();
        self.segs.push(Seg {
            start: 0,
            dirty: self.len,
        });
        self.dirty = self.len;
        self.normalized = true;
    }

    fn end(&self, i: usize) -> u64 {
        self.segs.get(i + 1).map_or(self.len, |s| s.start)
    }

    /// Make a segment start at `p` (0 < p < len) and return its index; `len` gives the count.
    /// A split shares the dirty pages in proportion to length, rounded to nearest.
    fn split_at(&mut self, p: u64) -> usize {
        if p >= self.len {
            return self.segs.len();
        }
        let i = self.segs.partition_point(|s| s.start <= p) - 1;
        let (s, e, c) = (self.segs[i].start, self.end(i), self.segs[i].dirty);
        if s == p {
            return i;
        }
        let (left_len, right_len) = (p - s, e - p);
        let mut left = mul_div_round(c, left_len, e - s);
        left = left.min(left_len).max(c.saturating_sub(right_len));
        self.segs[i].dirty = left;
        self.segs.insert(
            i + 1,
            Seg {
                start: p,
                dirty: c - left,
            },
        );
        i + 1
    }

    /// Mark `[a, b)` wholly dirty; returns the pages that were clean there.
    pub fn set_range(&mut self, a: u64, b: u64) -> u64 {
        let b = b.min(self.len);
        if a >= b {
            return 0;
        }
        let i = self.split_at(a);
        let j = self.split_at(b);
        let mut newly = 0;
        for k in i..j {
            newly += (self.end(k) - self.segs[k].start) - self.segs[k].dirty;
        }
        self.segs.drain(i + 1..j);
        self.segs[i].dirty = b - a;
        self.dirty += newly;
        self.merge_around(i);
        self.normalized = false;
        newly
    }

    /// Dirty `new` more pages, spread over the clean pages evenly (largest remainder).
    pub fn spread(&mut self, new: u64) {
        let clean = self.len - self.dirty;
        if new == 0 || clean == 0 {
            return;
        }
        if new >= clean {
            self.fill();
            return;
        }
        let mut given = 0;
        let mut remainders: Vec<(u64, usize)> = Vec::with_capacity(self.segs.len());
        for k in 0..self.segs.len() {
            let seg_clean = self.end(k) - self.segs[k].start - self.segs[k].dirty;
            let exact = u128::from(new) * u128::from(seg_clean);
            let share = (exact / u128::from(clean)) as u64;
            let rem = (exact % u128::from(clean)) as u64;
            self.segs[k].dirty += share;
            given += share;
            if share < seg_clean {
                remainders.push((rem, k));
            }
        }
        // Hand out what rounding kept back, biggest remainders first, earliest on ties.
        remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, k) in remainders.iter().take((new - given) as usize) {
            self.segs[k].dirty += 1;
        }
        self.dirty += new;
        self.normalize();
    }

    /// Take up to `max` dirty pages in address order from `from`. Returns the pages taken and
    /// the position just after the last one (or `len` if the rest of the region is clean).
    pub fn take(&mut self, from: u64, max: u64) -> (u64, u64) {
        if from >= self.len || max == 0 {
            return (0, from.min(self.len));
        }
        if self.dirty == 0 {
            // What the walk below gives for a clean region, without splitting and re-merging.
            return (0, self.len);
        }
        let before = self.segs.len();
        let mut k = self.split_at(from);
        // A split changed the segment before `k` too; nothing before that changes below.
        let first_changed = if self.segs.len() > before { k - 1 } else { k };
        let mut need = max;
        let mut taken = 0;
        let mut pos = self.len;
        while k < self.segs.len() && need > 0 {
            let (s, e, c) = (self.segs[k].start, self.end(k), self.segs[k].dirty);
            if c <= need {
                self.segs[k].dirty = 0;
                need -= c;
                taken += c;
                k += 1;
                if need == 0 && c > 0 {
                    // Stop right after this segment's last page, not at the region's end: the
                    // next call must still find the dirty pages that follow.
                    pos = e;
                }
                continue;
            }
            // Partial: the need-th dirty page of an even spread sits about need/c of the way.
            // need < c, so 0 < need <= advance < len: both pieces are non-empty.
            let len = e - s;
            let advance = mul_div_round(need, len, c);
            let advance = advance.clamp(need, len - (c - need));
            if k > 0 && self.segs[k - 1].dirty == 0 {
                // The clean piece would merge into the clean segment before it: move the
                // boundary instead of inserting a segment and removing it again.
                self.segs[k] = Seg {
                    start: s + advance,
                    dirty: c - need,
                };
            } else {
                self.segs[k].dirty = 0;
                self.segs.insert(
                    k + 1,
                    Seg {
                        start: s + advance,
                        dirty: c - need,
                    },
                );
                k += 1;
            }
            taken += need;
            pos = s + advance;
            need = 0;
        }
        if need > 0 {
            pos = self.len;
        }
        self.dirty -= taken;
        if self.normalized {
            // Only pairs with a changed segment (first_changed..=k) can have become mergeable.
            self.normalize_range(first_changed.saturating_sub(1), k + 1);
        } else {
            self.normalize();
        }
        (taken, pos)
    }

    fn same_density(&self, a: usize, b: usize) -> bool {
        let la = self.end(a) - self.segs[a].start;
        let lb = self.end(b) - self.segs[b].start;
        let (da, db) = (self.segs[a].dirty, self.segs[b].dirty);
        match (da.checked_mul(lb), db.checked_mul(la)) {
            (Some(x), Some(y)) => x == y,
            _ => u128::from(da) * u128::from(lb) == u128::from(db) * u128::from(la),
        }
    }

    fn merge_around(&mut self, i: usize) {
        if i + 1 < self.segs.len() && self.same_density(i, i + 1) {
            self.segs[i].dirty += self.segs[i + 1].dirty;
            self.segs.remove(i + 1);
        }
        if i > 0 && self.same_density(i - 1, i) {
            self.segs[i - 1].dirty += self.segs[i].dirty;
            self.segs.remove(i);
        }
    }

    /// Merge neighbours of equal density (keeps the list short).
    fn normalize(&mut self) {
        self.normalize_range(0, usize::MAX);
        self.normalized = true;
    }

    /// Merge neighbours of equal density among segments `lo..=hi`. Equal density is an
    /// equivalence, so merging runs in any order gives the same list: when no other pair is
    /// mergeable this equals a full [`Self::normalize`].
    fn normalize_range(&mut self, lo: usize, hi: usize) {
        let mut hi = hi.min(self.segs.len() - 1);
        let mut k = lo;
        while k < hi {
            if self.same_density(k, k + 1) {
                self.segs[k].dirty += self.segs[k + 1].dirty;
                self.segs.remove(k + 1);
                hi -= 1;
            } else {
                k += 1;
            }
        }
    }

    #[cfg(test)]
    fn check(&self) {
        assert_eq!(self.segs[0].start, 0);
        let mut sum = 0;
        for k in 0..self.segs.len() {
            let len = self.end(k) - self.segs[k].start;
            assert!(len > 0, "empty segment {k}: {self:?}");
            assert!(self.segs[k].dirty <= len, "{self:?}");
            sum += self.segs[k].dirty;
        }
        assert_eq!(sum, self.dirty);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_div_round_is_exact_past_u64_products() {
        let wide = |a: u64, b: u64, d: u64| {
            ((u128::from(a) * u128::from(b) + u128::from(d / 2)) / u128::from(d)) as u64
        };
        let big = 1u64 << 40; // a 4 EiB region's pages: products overflow u64
        for (a, b, d) in [
            (3, 5, 2),
            (7, 1, 2),
            (big, big / 2, big),
            (big - 1, big - 3, big + 7),
            (u64::MAX / 3, 2, 3),
            (1 << 31, 1 << 32, (1 << 32) + 1),
        ] {
            assert_eq!(mul_div_round(a, b, d), wide(a, b, d), "{a} {b} {d}");
        }
    }

    #[test]
    fn fill_take_all_in_one_pass() {
        let mut s = SegList::new(1000);
        s.fill();
        assert_eq!(s.take(0, 300), (300, 300));
        assert_eq!(s.take(300, 10_000), (700, 1000));
        assert_eq!(s.dirty(), 0);
        s.check();
        assert_eq!(s.segments(), 1);
    }

    #[test]
    fn set_range_counts_only_clean_pages() {
        let mut s = SegList::new(100);
        assert_eq!(s.set_range(10, 30), 20);
        assert_eq!(s.set_range(20, 40), 10);
        assert_eq!(s.dirty(), 30);
        s.check();
        // Taking from 0 skips the clean head and stops after 15 pages at 25.
        assert_eq!(s.take(0, 15), (15, 25));
        assert_eq!(s.dirty(), 15);
        s.check();
    }

    #[test]
    fn spread_is_even_and_exact_in_total() {
        let mut s = SegList::new(1000);
        s.set_range(0, 500);
        s.spread(250); // the clean half becomes half dirty
        assert_eq!(s.dirty(), 750);
        s.check();
        // Taking through the first half yields 500, then 250 from the second.
        assert_eq!(s.take(0, 500), (500, 500));
        let (taken, pos) = s.take(500, 125);
        assert_eq!(taken, 125);
        assert_eq!(pos, 750);
        s.check();
    }

    #[test]
    fn segments_are_bounded_by_boundaries_made_and_collapse_after_a_pass() {
        let mut s = SegList::new(1 << 28); // a 1 TiB region of 4 KiB pages
        s.fill();
        let mut pos = 0;
        let mut ranges = 0;
        for round in 0..1000u64 {
            let (_, p) = s.take(pos, 1 << 16);
            pos = if p >= s.len() { 0 } else { p };
            if round % 10 == 0 {
                s.spread(1 << 12);
                let a = (round * 7919 * 4099) % s.len();
                s.set_range(a, a + 1000);
                ranges += 1;
            }
            s.check();
            // Each set_range adds at most two boundaries, the cursor one, a spread none.
            assert!(s.segments() <= 2 * ranges + 3, "{} segments", s.segments());
        }
        // A full pass of the cursor sends everything and leaves one clean segment.
        let dirty = s.dirty();
        assert_eq!(s.take(0, u64::MAX), (dirty, s.len()));
        assert_eq!(s.segments(), 1);
    }

    /// The take before its local merging: split, walk, insert, then merge the whole list.
    fn take_reference(s: &mut SegList, from: u64, max: u64) -> (u64, u64) {
        if from >= s.len || max == 0 {
            return (0, from.min(s.len));
        }
        if s.dirty == 0 {
            return (0, s.len);
        }
        let mut k = s.split_at(from);
        let (mut need, mut taken, mut pos) = (max, 0, s.len);
        while k < s.segs.len() && need > 0 {
            let (a, e, c) = (s.segs[k].start, s.end(k), s.segs[k].dirty);
            if c <= need {
                s.segs[k].dirty = 0;
                need -= c;
                taken += c;
                k += 1;
                if need == 0 && c > 0 {
                    pos = e;
                }
                continue;
            }
            let len = e - a;
            let advance = mul_div_round(need, len, c).clamp(need, len - (c - need));
            s.segs[k].dirty = 0;
            if advance < len {
                let rest = Seg {
                    start: a + advance,
                    dirty: c - need,
                };
                s.segs.insert(k + 1, rest);
            }
            taken += need;
            pos = a + advance;
            need = 0;
        }
        if need > 0 {
            pos = s.len;
        }
        s.dirty -= taken;
        s.normalize();
        (taken, pos)
    }

    #[test]
    fn take_merges_locally_exactly_as_a_full_merge_would() {
        // Random mixes of the three writes and the cursor's takes, on lists of a few to a few
        // hundred segments: every take must leave the very list the full merge leaves.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        let mut takes_with_merges = 0;
        for len in [7u64, 100, 4096, 1 << 20, 3 << 30] {
            let mut fast = SegList::new(len);
            let mut reference = fast.clone();
            let mut pos = 0;
            for _ in 0..3000 {
                match next(10) {
                    0 => {
                        let a = next(len);
                        let b = a + 1 + next(len / 8 + 1);
                        assert_eq!(fast.set_range(a, b), reference.set_range(a, b));
                    }
                    1 => {
                        let n = next(len - fast.dirty() + 1);
                        fast.spread(n);
                        reference.spread(n);
                    }
                    2 => {
                        fast.fill();
                        reference.fill();
                    }
                    _ => {
                        let max = 1 + next(len / 16 + 1);
                        let before = fast.segments();
                        let got = fast.take(pos, max);
                        assert_eq!(got, take_reference(&mut reference, pos, max));
                        takes_with_merges += usize::from(fast.segments() < before);
                        pos = if got.1 >= len { 0 } else { got.1 };
                    }
                }
                assert_eq!(fast.segs, reference.segs, "len {len}");
                assert_eq!(fast.dirty, reference.dirty);
                fast.check();
            }
        }
        // The takes did merge segments (the property is not checked on lists that never merge).
        assert!(takes_with_merges > 100, "{takes_with_merges}");
    }

    #[test]
    fn take_stops_where_the_last_taken_page_is() {
        let mut s = SegList::new(100);
        s.set_range(10, 20);
        s.set_range(50, 60);
        // Exactly the first run: the cursor must stop at 20, not skip past 50..60.
        assert_eq!(s.take(0, 10), (10, 20));
        assert_eq!(s.take(20, 10), (10, 60));
    }
}
