//! Physical region allocator: the memory the device tree reports as usable, minus everything
//! already spoken for, handed out in page-aligned pieces.
//!
//! Input is the `/memory` banks and the reserved ranges (the DTB itself, the initrd,
//! `/memreserve/` entries, `/reserved-memory` nodes, the hypervisor image). The free list is the
//! banks minus the reserved ranges. This is no Arm ARM rule but the device-tree contract
//! (Devicetree Specification, "/memory node" and "/reserved-memory node"): a reserved range may
//! overlap another, repeat it, or lie outside every bank, and none of that is an error.
//!
//! It runs before the heap exists, so it uses no heap: the free list is a
//! `heapless::Vec` of at most [`MAX_FREE_RANGES`] ranges, and exceeding it is an explicit error.
//!
//! Invariants of the free list:
//! * every range starts and ends on a page boundary ([`PAGE_SIZE`]) and is non-empty: banks are
//!   trimmed inward to whole pages, reserved ranges widened outward to whole pages;
//! * ranges are sorted by address, disjoint and not adjacent (touching ranges are merged);
//! * no byte of a reserved range is in it, nor any byte outside the banks.

use core::fmt;

use heapless::Vec;

use super::{MemRange, PAGE_SIZE, align_down, align_up};

/// The most disjoint free ranges (and banks) the allocator can track.
pub const MAX_FREE_RANGES: usize = 64;

/// The free list type.
type FreeList = Vec<MemRange, MAX_FREE_RANGES>;

/// Why the allocator could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// The banks, or the holes punched in them, make more than [`MAX_FREE_RANGES`] ranges.
    TooManyRanges,
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyRanges => {
                write!(f, "more than {MAX_FREE_RANGES} free memory ranges")
            }
        }
    }
}

/// Hands out page-aligned physical ranges from the free memory of the machine. Nothing is ever
/// given back: what it hands out is owned for good (page tables, VM memory, the heap).
#[derive(Clone, Debug)]
pub struct RegionAllocator {
    free: FreeList,
}

impl RegionAllocator {
    /// The allocator over `banks` minus `reserved`. Either list may be in any order, overlap
    /// itself, or hold empty ranges. Banks are trimmed inward to whole pages and reserved ranges
    /// widened outward, so a page partly reserved is not free.
    ///
    /// # Errors
    ///
    /// [`RegionError::TooManyRanges`] if there are more than [`MAX_FREE_RANGES`] non-empty
    /// banks, or if the reserved holes split the banks into more ranges than that.
    pub fn new(banks: &[MemRange], reserved: &[MemRange]) -> Result<Self, RegionError> {
        let mut free = FreeList::new();
        for bank in banks.iter().filter_map(page_inward) {
            free.push(bank).map_err(|_| RegionError::TooManyRanges)?;
        }
        free.sort_unstable();
        let mut free = merged(&free)?;
        for hole in reserved.iter().filter_map(page_outward) {
            free = subtract(&free, hole)?;
        }
        Ok(Self { free })
    }

    /// The free ranges, sorted, disjoint and page aligned.
    pub fn free_ranges(&self) -> &[MemRange] {
        &self.free
    }

    /// Total free bytes.
    pub fn total_free(&self) -> u64 {
        self.free.iter().map(MemRange::size).sum()
    }

    /// Takes `size` bytes (rounded up to whole pages) aligned to `align` (a power of two; less
    /// than a page means a page) from the lowest address where they fit.
    ///
    /// `None` if `size` is 0, `align` is not a power of two, or nothing fits. A piece that
    /// would leave free space on both sides needs one more slot in the free list; if the list
    /// is full ([`MAX_FREE_RANGES`]) such a piece is skipped and the search goes on.
    #[must_use = "the range is lost if dropped"]
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<MemRange> {
        self.alloc_below(size, align, u64::MAX)
    }

    /// Like [`RegionAllocator::alloc`], but the piece must end at or below `limit` (for
    /// example for a device that only reaches the low 1 GiB, as DMA on the Raspberry Pi 4).
    #[must_use = "the range is lost if dropped"]
    pub fn alloc_below(&mut self, size: u64, align: u64, limit: u64) -> Option<MemRange> {
        let (size, align) = page_request(size, align)?;
        let (index, piece) = self
            .free
            .iter()
            .enumerate()
            .filter_map(|(i, r)| lowest_fit(r, size, align).map(|p| (i, p)))
            .take_while(|(_, piece)| piece.end <= limit)
            .find(|&(i, piece)| self.can_take(i, piece))?;
        self.take(index, piece);
        Some(piece)
    }

    /// Like [`RegionAllocator::alloc`], but takes from the highest address where the piece
    /// fits.
    #[must_use = "the range is lost if dropped"]
    pub fn alloc_high(&mut self, size: u64, align: u64) -> Option<MemRange> {
        let (size, align) = page_request(size, align)?;
        let (index, piece) = self
            .free
            .iter()
            .enumerate()
            .rev()
            .filter_map(|(i, r)| highest_fit(r, size, align).map(|p| (i, p)))
            .find(|&(i, piece)| self.can_take(i, piece))?;
        self.take(index, piece);
        Some(piece)
    }

    /// True if `piece`, inside free range `index`, can be removed: it touches an end of the
    /// range, or the free list has room for the extra range its removal leaves.
    fn can_take(&self, index: usize, piece: MemRange) -> bool {
        let range = self.free[index];
        piece.start == range.start || piece.end == range.end || !self.free.is_full()
    }

    /// Removes `piece` from free range `index`; [`RegionAllocator::can_take`] must hold.
    fn take(&mut self, index: usize, piece: MemRange) {
        let range = self.free[index];
        let below = MemRange {
            start: range.start,
            end: piece.start,
        };
        let above = MemRange {
            start: piece.end,
            end: range.end,
        };
        match (below.is_empty(), above.is_empty()) {
            (true, true) => {
                self.free.remove(index);
            }
            (false, true) => self.free[index] = below,
            (true, false) => self.free[index] = above,
            (false, false) => {
                self.free[index] = below;
                // Cannot fail: `can_take` checked there is room.
                let inserted = self.free.insert(index + 1, above);
                debug_assert!(inserted.is_ok(), "free list full despite can_take");
            }
        }
    }
}

/// `size` rounded up to pages and `align` raised to at least a page; `None` if `size` is 0 or
/// overflows, or `align` is not a power of two.
fn page_request(size: u64, align: u64) -> Option<(u64, u64)> {
    if size == 0 || !align.is_power_of_two() {
        return None;
    }
    Some((align_up(size, PAGE_SIZE)?, align.max(PAGE_SIZE)))
}

/// The lowest `size` bytes of `range` starting on an `align` boundary.
fn lowest_fit(range: &MemRange, size: u64, align: u64) -> Option<MemRange> {
    let piece = MemRange::with_size(align_up(range.start, align)?, size)?;
    range.covers(&piece).then_some(piece)
}

/// The highest `size` bytes of `range` starting on an `align` boundary.
fn highest_fit(range: &MemRange, size: u64, align: u64) -> Option<MemRange> {
    let start = align_down(range.end.checked_sub(size)?, align);
    let piece = MemRange::with_size(start, size)?;
    range.covers(&piece).then_some(piece)
}

/// The whole pages inside `range`, if any.
fn page_inward(range: &MemRange) -> Option<MemRange> {
    let start = align_up(range.start, PAGE_SIZE)?;
    let trimmed = MemRange {
        start,
        end: align_down(range.end, PAGE_SIZE),
    };
    (!trimmed.is_empty()).then_some(trimmed)
}

/// The pages `range` touches, if it is not empty. A range ending in the last page of the
/// address space keeps `u64::MAX` as its end; no free range reaches that far.
fn page_outward(range: &MemRange) -> Option<MemRange> {
    if range.is_empty() {
        return None;
    }
    let end = align_up(range.end, PAGE_SIZE).unwrap_or(u64::MAX);
    Some(MemRange {
        start: align_down(range.start, PAGE_SIZE),
        end,
    })
}

/// `sorted` with overlapping or touching ranges joined.
fn merged(sorted: &[MemRange]) -> Result<FreeList, RegionError> {
    let mut out = FreeList::new();
    for &range in sorted {
        if let Some(last) = out.last_mut()
            && range.start <= last.end
        {
            last.end = last.end.max(range.end);
            continue;
        }
        out.push(range).map_err(|_| RegionError::TooManyRanges)?;
    }
    Ok(out)
}

/// `free` without the bytes of `hole`; order is kept.
fn subtract(free: &[MemRange], hole: MemRange) -> Result<FreeList, RegionError> {
    let mut out = FreeList::new();
    for &range in free {
        let pieces = if range.overlaps(&hole) {
            [
                MemRange {
                    start: range.start,
                    end: hole.start.max(range.start),
                },
                MemRange {
                    start: hole.end.min(range.end),
                    end: range.end,
                },
            ]
        } else {
            [range, MemRange::default()]
        };
        for piece in pieces.into_iter().filter(|p| !p.is_empty()) {
            out.push(piece).map_err(|_| RegionError::TooManyRanges)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn r(start: u64, end: u64) -> MemRange {
        MemRange { start, end }
    }

    #[test]
    fn reserved_holes_are_excluded() {
        let a = RegionAllocator::new(
            &[r(0x4000_0000, 0x8000_0000)],
            &[r(0x4800_0000, 0x4810_0000)],
        )
        .unwrap();
        assert_eq!(
            a.free_ranges(),
            [r(0x4000_0000, 0x4800_0000), r(0x4810_0000, 0x8000_0000)]
        );
        assert_eq!(a.total_free(), 0x4000_0000 - MIB);
    }

    #[test]
    fn overlapping_and_duplicate_reserved_ranges_are_fine() {
        let reserved = [
            r(0x2000, 0x5000),
            r(0x4000, 0x8000),
            r(0x2000, 0x5000),
            r(0x3000, 0x3000),
        ];
        let a = RegionAllocator::new(&[r(0, 0x10000)], &reserved).unwrap();
        assert_eq!(a.free_ranges(), [r(0, 0x2000), r(0x8000, 0x10000)]);
    }

    #[test]
    fn reserved_range_outside_all_banks_is_ignored() {
        let a = RegionAllocator::new(&[r(0x1000, 0x9000)], &[r(0x10_0000, 0x20_0000)]).unwrap();
        assert_eq!(a.free_ranges(), [r(0x1000, 0x9000)]);
    }

    #[test]
    fn reserved_range_straddling_bank_edges_is_clipped() {
        let banks = [r(0x1_0000, 0x2_0000), r(0x3_0000, 0x4_0000)];
        let a = RegionAllocator::new(&banks, &[r(0x1_8000, 0x3_8000)]).unwrap();
        assert_eq!(
            a.free_ranges(),
            [r(0x1_0000, 0x1_8000), r(0x3_8000, 0x4_0000)]
        );
    }

    #[test]
    fn reserved_range_covering_a_bank_removes_it() {
        let banks = [r(0x1_0000, 0x2_0000), r(0x3_0000, 0x4_0000)];
        let a = RegionAllocator::new(&banks, &[r(0, 0x2_0000)]).unwrap();
        assert_eq!(a.free_ranges(), [r(0x3_0000, 0x4_0000)]);
    }

    #[test]
    fn unaligned_banks_are_trimmed_to_pages() {
        let a = RegionAllocator::new(&[r(0x1234, 0x9876), r(0x10_0010, 0x10_0ff0)], &[]).unwrap();
        assert_eq!(a.free_ranges(), [r(0x2000, 0x9000)]);
    }

    #[test]
    fn unaligned_reserved_ranges_are_widened_to_pages() {
        let a = RegionAllocator::new(&[r(0, 0x10000)], &[r(0x3001, 0x4001)]).unwrap();
        assert_eq!(a.free_ranges(), [r(0, 0x3000), r(0x5000, 0x10000)]);
    }

    #[test]
    fn reserved_range_at_top_of_address_space_does_not_overflow() {
        let top = align_down(u64::MAX, PAGE_SIZE);
        let a = RegionAllocator::new(&[r(top - 0x4000, u64::MAX)], &[r(top - 0x1000, u64::MAX)])
            .unwrap();
        assert_eq!(a.free_ranges(), [r(top - 0x4000, top - 0x1000)]);
    }

    #[test]
    fn banks_are_sorted_and_merged() {
        let banks = [
            r(0x8000, 0x9000),
            r(0x1000, 0x3000),
            r(0x3000, 0x4000),
            r(0x2000, 0x2800),
        ];
        let a = RegionAllocator::new(&banks, &[]).unwrap();
        assert_eq!(a.free_ranges(), [r(0x1000, 0x4000), r(0x8000, 0x9000)]);
    }

    #[test]
    fn too_many_ranges_is_an_error() {
        let holes: std::vec::Vec<_> = (0..MAX_FREE_RANGES as u64)
            .map(|i| r(0x2000 * i + 0x1000, 0x2000 * i + 0x2000))
            .collect();
        // MAX_FREE_RANGES holes leave exactly MAX_FREE_RANGES free pages below them...
        let a = RegionAllocator::new(&[r(0, 0x2000 * MAX_FREE_RANGES as u64)], &holes).unwrap();
        assert_eq!(a.free_ranges().len(), MAX_FREE_RANGES);
        // ...and one more range above them is one too many.
        let bank = r(0, 0x2000 * MAX_FREE_RANGES as u64 + 0x1000);
        let err = RegionAllocator::new(&[bank], &holes).unwrap_err();
        assert_eq!(err, RegionError::TooManyRanges);
        assert_eq!(err.to_string(), "more than 64 free memory ranges");
    }

    #[test]
    fn alloc_takes_lowest_first_fit() {
        let banks = [r(0x1000, 0x3000), r(0x10_0000, 0x20_0000)];
        let mut a = RegionAllocator::new(&banks, &[]).unwrap();
        assert_eq!(a.alloc(0x3000, PAGE_SIZE), Some(r(0x10_0000, 0x10_3000)));
        assert_eq!(a.alloc(0x1000, PAGE_SIZE), Some(r(0x1000, 0x2000)));
        assert_eq!(
            a.free_ranges(),
            [r(0x2000, 0x3000), r(0x10_3000, 0x20_0000)]
        );
    }

    #[test]
    fn alignment_is_honoured() {
        let mut a = RegionAllocator::new(&[r(0x1000, 0x100_0000)], &[]).unwrap();
        let got = a.alloc(0x1000, 2 * MIB).unwrap();
        assert_eq!(got, r(2 * MIB, 2 * MIB + 0x1000));
        // The alignment gap stays free.
        assert_eq!(
            a.free_ranges(),
            [r(0x1000, 2 * MIB), r(2 * MIB + 0x1000, 0x100_0000)]
        );
        assert_eq!(
            a.alloc(0x1000, 1),
            Some(r(0x1000, 0x2000)),
            "small align means a page"
        );
    }

    #[test]
    fn size_is_rounded_up_to_pages() {
        let mut a = RegionAllocator::new(&[r(0, 0x10000)], &[]).unwrap();
        assert_eq!(a.alloc(1, PAGE_SIZE), Some(r(0, 0x1000)));
        assert_eq!(a.alloc(0x1001, PAGE_SIZE), Some(r(0x1000, 0x3000)));
    }

    #[test]
    fn bad_requests_return_none() {
        let mut a = RegionAllocator::new(&[r(0, 0x10000)], &[]).unwrap();
        assert_eq!(a.alloc(0, PAGE_SIZE), None);
        assert_eq!(a.alloc(0x1000, 0x3000), None);
        assert_eq!(a.alloc(0x1000, 0), None);
        assert_eq!(a.alloc(u64::MAX, PAGE_SIZE), None);
        assert_eq!(a.alloc_high(u64::MAX, PAGE_SIZE), None);
        assert_eq!(a.total_free(), 0x10000);
    }

    #[test]
    fn exhaustion_returns_none() {
        let mut a = RegionAllocator::new(&[r(0, 0x2000)], &[]).unwrap();
        assert_eq!(a.alloc(0x3000, PAGE_SIZE), None);
        assert!(a.alloc(0x1000, PAGE_SIZE).is_some());
        assert!(a.alloc_high(0x1000, PAGE_SIZE).is_some());
        assert_eq!(a.alloc(0x1000, PAGE_SIZE), None);
        assert_eq!(a.alloc_high(0x1000, PAGE_SIZE), None);
        assert!(a.free_ranges().is_empty());
        assert_eq!(a.total_free(), 0);
    }

    #[test]
    fn alloc_high_takes_the_top() {
        let banks = [r(0x1000, 0x5000), r(0x10_0000, 0x10_2000)];
        let mut a = RegionAllocator::new(&banks, &[]).unwrap();
        assert_eq!(
            a.alloc_high(0x1000, PAGE_SIZE),
            Some(r(0x10_1000, 0x10_2000))
        );
        // Too big for what is left of the top range: taken from the top of the next one down.
        assert_eq!(a.alloc_high(0x2000, PAGE_SIZE), Some(r(0x3000, 0x5000)));
        assert_eq!(a.alloc_high(0x1000, 0x2000), Some(r(0x10_0000, 0x10_1000)));
        assert_eq!(a.free_ranges(), [r(0x1000, 0x3000)]);
    }

    #[test]
    fn alloc_below_respects_limit() {
        let banks = [r(0x1000, 0x2000), r(0x4000_0000, 0x8000_0000)];
        let mut a = RegionAllocator::new(&banks, &[]).unwrap();
        assert_eq!(a.alloc_below(0x2000, PAGE_SIZE, 0x4000_0000), None);
        assert_eq!(
            a.alloc_below(0x2000, PAGE_SIZE, 0x4000_2000),
            Some(r(0x4000_0000, 0x4000_2000))
        );
        assert_eq!(
            a.alloc_below(0x1000, PAGE_SIZE, 0x4000_0000),
            Some(r(0x1000, 0x2000))
        );
    }

    #[test]
    fn full_free_list_skips_a_piece_that_would_split_a_range() {
        // MAX_FREE_RANGES ranges of 3 pages, each at 0x3000..0x6000 in its own 64 KiB, so a
        // 16 KiB aligned page (at 0x4000) would leave free space on both of its sides.
        let at = |i: usize| 0x10000 * i as u64;
        let holes: std::vec::Vec<_> = (0..MAX_FREE_RANGES - 1)
            .map(|i| r(at(i) + 0x6000, at(i + 1) + 0x3000))
            .collect();
        let bank = r(0x3000, at(MAX_FREE_RANGES - 1) + 0x6000);
        let mut a = RegionAllocator::new(&[bank], &holes).unwrap();
        assert_eq!(a.free_ranges().len(), MAX_FREE_RANGES);
        assert_eq!(a.alloc(0x1000, 0x4000), None);
        assert_eq!(a.free_ranges().len(), MAX_FREE_RANGES);
        // A piece at a range's edge needs no extra slot.
        assert_eq!(a.alloc(0x1000, PAGE_SIZE), Some(r(0x3000, 0x4000)));
        // Use up the first range; then there is room to split the next one.
        a.alloc(0x2000, PAGE_SIZE).unwrap();
        assert_eq!(a.free_ranges().len(), MAX_FREE_RANGES - 1);
        assert_eq!(a.alloc(0x1000, 0x4000), Some(r(0x1_4000, 0x1_5000)));
        assert_eq!(a.free_ranges().len(), MAX_FREE_RANGES);
    }
}
