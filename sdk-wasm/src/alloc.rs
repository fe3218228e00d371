//! A small allocator for the single-threaded wasm build, replacing std's dlmalloc (~7 KB of code).
//!
//! Sizes are rounded up to a power of two (at least 8 bytes); each size class keeps a free list of
//! returned blocks, threaded through the blocks themselves. New blocks are carved from fresh pages
//! obtained with `memory.grow`. Blocks never move between classes, which wastes some memory (up to
//! half a block) but the SDK keeps only a few kilobytes alive: it holds connection state, channel
//! names and presence members, while event payloads live in JS.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::memory_grow;
use core::cell::UnsafeCell;
use core::ptr::null_mut;

const PAGE: usize = 65536;
/// Blocks of up to this size are aligned to their size; larger ones to this (enough for any
/// alignment Rust code asks of a heap block here).
const MAX_ALIGN: usize = 64;

struct Heap {
    /// Next free byte of the current bump region and its end.
    next: usize,
    end: usize,
    /// Head of the free list of each class (block size `1 << class`), 0 when empty.
    free: [usize; 32],
}

pub struct Allocator(UnsafeCell<Heap>);

// SAFETY: wasm32-unknown-unknown without the atomics feature runs one thread.
unsafe impl Sync for Allocator {}

impl Allocator {
    pub const fn new() -> Self {
        Allocator(UnsafeCell::new(Heap {
            next: 0,
            end: 0,
            free: [0; 32],
        }))
    }
}

fn class_of(layout: &Layout) -> (usize, usize) {
    let size = layout.size().max(layout.align()).max(8).next_power_of_two();
    (size, size.trailing_zeros() as usize)
}

unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let heap = &mut *self.0.get();
        let (size, class) = class_of(&layout);
        let head = heap.free[class];
        if head != 0 {
            heap.free[class] = *(head as *const usize);
            return head as *mut u8;
        }
        let align = if layout.align() > MAX_ALIGN {
            size
        } else {
            size.min(MAX_ALIGN)
        };
        let mut start = (heap.next + align - 1) & !(align - 1);
        if heap.end == 0 || start + size > heap.end {
            // Grow by enough whole pages for this block (plus alignment slack).
            let pages = (size + align).div_ceil(PAGE);
            let first = memory_grow(0, pages);
            if first == usize::MAX {
                return null_mut();
            }
            let base = first * PAGE;
            if base != heap.end {
                // Not contiguous with the current region (or the first region): start anew.
                heap.next = base;
            }
            heap.end = base + pages * PAGE;
            start = (heap.next + align - 1) & !(align - 1);
        }
        heap.next = start + size;
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let heap = &mut *self.0.get();
        let (_, class) = class_of(&layout);
        *(ptr as *mut usize) = heap.free[class];
        heap.free[class] = ptr as usize;
    }
}
