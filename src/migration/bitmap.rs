//! The migration bitmap, one bit per page (QEMU's `RAMBlock::bmap`), with the send cursor.
//!
//! Page-exact backends (KVM, and the simulator's page-exact model) share it, so the order in
//! which pages leave and what counts as "newly dirty" at a sync are the same code for both.

/// One bit per guest page: set = must be (re)sent.
#[derive(Clone, Debug)]
pub struct DirtyBitmap {
    words: Vec<u64>,
    pages: u64,
    count: u64,
    /// Next page the send scan looks at (QEMU's `last_page` / `last_seen_block`).
    cursor: u64,
}

impl DirtyBitmap {
    /// A clean bitmap for `pages` pages.
    pub fn new(pages: u64) -> Self {
        Self {
            words: vec![0; pages.div_ceil(64) as usize],
            pages,
            count: 0,
            cursor: 0,
        }
    }

    /// Pages covered.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Pages set (`migration_dirty_pages`).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Where the send scan continues.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Mark every page dirty (setup: the bitmap starts all ones).
    pub fn set_all(&mut self) {
        self.words.fill(u64::MAX);
        let tail = self.pages % 64;
        if tail != 0 {
            if let Some(last) = self.words.last_mut() {
                *last = (1u64 << tail) - 1;
            }
        }
        self.count = self.pages;
    }

    /// Clear every bit.
    pub fn clear_all(&mut self) {
        self.words.fill(0);
        self.count = 0;
    }

    /// Is `pfn` set?
    pub fn test(&self, pfn: u64) -> bool {
        pfn < self.pages && self.words[(pfn / 64) as usize] & (1 << (pfn % 64)) != 0
    }

    /// Set `pfn`; true if it was clear (newly dirty).
    pub fn set(&mut self, pfn: u64) -> bool {
        debug_assert!(pfn < self.pages);
        let w = &mut self.words[(pfn / 64) as usize];
        let bit = 1u64 << (pfn % 64);
        let newly = *w & bit == 0;
        *w |= bit;
        // Not `count += u64::from(newly)`: rustc 1.95.0 at opt-level >= 2 drops that update
        // when this is inlined into `or_log`'s bit loop (reproduced outside the project; the
        // test `or_log_counts_only_newly_set_pages` fails in release with it).
        if newly {
            self.count += 1;
        }
        newly
    }

    /// OR in a dirty log laid out as KVM returns it (bit i of word j = page 64*j+i) for the
    /// pages starting at `first_pfn`. Returns how many pages were newly set.
    pub fn or_log(&mut self, first_pfn: u64, log: &[u64]) -> u64 {
        let mut newly = 0;
        if first_pfn % 64 == 0 {
            let base = (first_pfn / 64) as usize;
            let end_pfn = (first_pfn + log.len() as u64 * 64).min(self.pages);
            let n = (end_pfn.saturating_sub(first_pfn)).div_ceil(64) as usize;
            let last_word = self.words.len() - 1;
            let tail_mask = match self.pages % 64 {
                0 => u64::MAX,
                tail => (1u64 << tail) - 1,
            };
            for (i, &bits) in log.iter().take(n).enumerate() {
                let w = &mut self.words[base + i];
                let mut add = bits & !*w;
                if base + i == last_word {
                    add &= tail_mask;
                }
                newly += u64::from(add.count_ones());
                *w |= add;
            }
        } else {
            for (j, &bits) in log.iter().enumerate() {
                let mut b = bits;
                while b != 0 {
                    let i = u64::from(b.trailing_zeros());
                    b &= b - 1;
                    let pfn = first_pfn + j as u64 * 64 + i;
                    if pfn < self.pages && self.set(pfn) {
                        newly += 1;
                    }
                }
            }
            return newly;
        }
        self.count += newly;
        newly
    }

    /// Find the next set page at or after the cursor (wrapping at the end), clear it, and move
    /// the cursor past it.
    pub fn take_next(&mut self) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let pfn = self.find_from(self.cursor).or_else(|| self.find_from(0))?;
        self.words[(pfn / 64) as usize] &= !(1u64 << (pfn % 64));
        self.count -= 1;
        self.cursor = if pfn + 1 >= self.pages { 0 } else { pfn + 1 };
        Some(pfn)
    }

    fn find_from(&self, start: u64) -> Option<u64> {
        if start >= self.pages {
            return None;
        }
        let mut w = (start / 64) as usize;
        let mut bits = self.words[w] & (u64::MAX << (start % 64));
        loop {
            if bits != 0 {
                let pfn = w as u64 * 64 + u64::from(bits.trailing_zeros());
                return (pfn < self.pages).then_some(pfn);
            }
            w += 1;
            if w >= self.words.len() {
                return None;
            }
            bits = self.words[w];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_all_and_take_in_address_order() {
        let mut b = DirtyBitmap::new(130);
        b.set_all();
        assert_eq!(b.count(), 130);
        let taken: Vec<u64> = std::iter::from_fn(|| b.take_next()).collect();
        assert_eq!(taken, (0..130).collect::<Vec<_>>());
        assert_eq!(b.count(), 0);
        assert_eq!(b.take_next(), None);
    }

    #[test]
    fn cursor_continues_and_wraps() {
        let mut b = DirtyBitmap::new(200);
        for p in [5, 70, 150] {
            b.set(p);
        }
        assert_eq!(b.take_next(), Some(5));
        b.set(1); // behind the cursor: sent after the wrap
        assert_eq!(b.take_next(), Some(70));
        assert_eq!(b.take_next(), Some(150));
        assert_eq!(b.take_next(), Some(1));
        assert_eq!(b.take_next(), None);
    }

    #[test]
    fn or_log_counts_only_newly_set_pages() {
        let mut b = DirtyBitmap::new(128);
        b.set(0);
        b.set(64);
        let newly = b.or_log(0, &[0b111, 0b1]);
        assert_eq!(newly, 2); // pages 1, 2 new; 0 and 64 were already dirty
        assert_eq!(b.count(), 4);
        // An unaligned slot start.
        let newly = b.or_log(3, &[0b11]);
        assert_eq!(newly, 2); // pages 3 and 4
        assert!(b.test(3) && b.test(4));
        assert_eq!(b.count(), 6);
    }

    #[test]
    fn or_log_ignores_bits_beyond_the_end() {
        let mut b = DirtyBitmap::new(70);
        let newly = b.or_log(0, &[u64::MAX, u64::MAX]);
        assert_eq!(newly, 70);
        assert_eq!(b.count(), 70);
    }
}
