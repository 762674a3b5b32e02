//! The global allocator for a training process: mimalloc for small blocks, and on glibc Linux,
//! glibc's heap without `mmap` for large ones.
//!
//! A training step frees and allocates the same large buffers every step (activations,
//! gradients, the LM head's `[rows, V]` logits, optimizer outputs). glibc serves blocks of
//! 32 MiB and more with a fresh `mmap` each time and unmaps them on free, so every step
//! page-faults them in again and the kernel zeroes every page: measured at about 8% of a CPU
//! step at the SmolLM2-135M benchmark shape (docs/benchmarks.md). mimalloc, which the `orpo`
//! binary uses for tokenization's many small strings, decommits freed memory after 10 ms by
//! default, which costs more (about 25%), and keeping it committed raised the peak by 300 MiB.
//!
//! [`TrainingAllocator`] gives blocks below [`LARGE_BLOCK`] to mimalloc and larger ones to
//! glibc's `malloc` told to use its main heap only, never to `mmap` and not to trim the heap: freed large blocks are
//! reused in place, so a warm step takes no page faults for them, and the peak stays glibc's.
//! Elsewhere (other C libraries, other systems) every block goes to mimalloc.
//!
//! Install it in a binary:
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: orpo_alloc::TrainingAllocator = orpo_alloc::TrainingAllocator;
//! ```

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;

/// Blocks of this many bytes or more take the large-block path.
pub const LARGE_BLOCK: usize = 64 << 10;

/// mimalloc for blocks under [`LARGE_BLOCK`], glibc's non-trimming heap for larger ones (see the
/// module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct TrainingAllocator;

unsafe impl GlobalAlloc for TrainingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        large::configure();
        if is_large(layout.size()) {
            unsafe { large::alloc(layout) }
        } else {
            unsafe { MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        large::configure();
        if is_large(layout.size()) {
            unsafe { large::alloc_zeroed(layout) }
        } else {
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(layout.size()) {
            unsafe { large::dealloc(ptr, layout) }
        } else {
            unsafe { MiMalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (is_large(layout.size()), is_large(new_size)) {
            (false, false) => unsafe { MiMalloc.realloc(ptr, layout, new_size) },
            (true, true) if layout.align() <= large::MALLOC_ALIGN => unsafe {
                large::realloc(ptr, new_size)
            },
            // Across the threshold the block changes allocator, and glibc's `realloc` does not
            // keep a larger alignment: move it.
            _ => unsafe {
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let new_ptr = self.alloc(new_layout);
                if !new_ptr.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new_ptr
            },
        }
    }
}

/// Whether a block of `size` bytes takes the large-block path.
#[inline]
fn is_large(size: usize) -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu")) && size >= LARGE_BLOCK
}

/// glibc's `malloc` for large blocks, configured once: no `mmap`, no trimming.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod large {
    use std::alloc::Layout;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The alignment glibc's `malloc` guarantees: two words (16 bytes on 64-bit targets, 8 on
    /// some 32-bit ones); larger alignments go through `posix_memalign`.
    pub(super) const MALLOC_ALIGN: usize = 2 * std::mem::size_of::<usize>();

    static CONFIGURED: AtomicBool = AtomicBool::new(false);

    /// `M_ARENA_MAX = 1`: every thread's large blocks come from the main heap (glibc's
    /// per-thread arenas are 64 MiB heaps that serve larger blocks with `mmap` whatever
    /// `M_MMAP_MAX` says; small blocks are mimalloc's, so there is little to contend for);
    /// `M_MMAP_MAX = 0`: every block from the heap, so a freed one is reused without page
    /// faults; `M_TRIM_THRESHOLD = −1`: freed memory is not handed back between steps
    /// (the peak, which is what bounds a run, is unchanged); `M_TOP_PAD`: grow the heap 64 MiB
    /// at a time. Called on every allocation, small ones included, so that it runs before any
    /// thread has an arena of its own. Racing first calls may both run it; `mallopt` is
    /// thread-safe and idempotent.
    #[inline]
    pub(super) fn configure() {
        if !CONFIGURED.load(Ordering::Relaxed) {
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, 1);
                libc::mallopt(libc::M_MMAP_MAX, 0);
                // −1: never trim (mallopt(3)).
                libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
                libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            }
            CONFIGURED.store(true, Ordering::Relaxed);
        }
    }

    pub(super) unsafe fn alloc(layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            return unsafe { libc::malloc(layout.size()) as *mut u8 };
        }
        let mut ptr = std::ptr::null_mut();
        match unsafe { libc::posix_memalign(&mut ptr, layout.align(), layout.size()) } {
            0 => ptr as *mut u8,
            _ => std::ptr::null_mut(),
        }
    }

    pub(super) unsafe fn alloc_zeroed(layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // calloc skips the memset for memory fresh from the kernel.
            return unsafe { libc::calloc(1, layout.size()) as *mut u8 };
        }
        let ptr = unsafe { alloc(layout) };
        if !ptr.is_null() {
            unsafe { std::ptr::write_bytes(ptr, 0, layout.size()) };
        }
        ptr
    }

    pub(super) unsafe fn dealloc(ptr: *mut u8, _layout: Layout) {
        unsafe { libc::free(ptr as *mut libc::c_void) }
    }

    /// `realloc` of a block allocated with at most [`MALLOC_ALIGN`].
    pub(super) unsafe fn realloc(ptr: *mut u8, new_size: usize) -> *mut u8 {
        unsafe { libc::realloc(ptr as *mut libc::c_void, new_size) as *mut u8 }
    }
}

/// Never used: without glibc every block is small ([`is_large`]).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod large {
    use std::alloc::Layout;

    pub(super) const MALLOC_ALIGN: usize = 0;
    pub(super) fn configure() {}
    pub(super) unsafe fn alloc(_: Layout) -> *mut u8 {
        unreachable!()
    }
    pub(super) unsafe fn alloc_zeroed(_: Layout) -> *mut u8 {
        unreachable!()
    }
    pub(super) unsafe fn dealloc(_: *mut u8, _: Layout) {
        unreachable!()
    }
    pub(super) unsafe fn realloc(_: *mut u8, _: usize) -> *mut u8 {
        unreachable!()
    }
}
