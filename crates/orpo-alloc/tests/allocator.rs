//! `orpo_alloc::TrainingAllocator` as this test binary's global allocator: blocks keep
//! their contents on both paths and across them, and (glibc Linux) a freed large block is
//! reused without page faults.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::Mutex;

use orpo_alloc::{LARGE_BLOCK, TrainingAllocator};

#[global_allocator]
static GLOBAL: TrainingAllocator = TrainingAllocator;

/// The fault count is process-wide: the tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) % 251) as u8
}

#[test]
fn blocks_keep_their_contents_on_both_paths_and_across_them() {
    let _turn = SERIAL.lock().unwrap();
    let sizes = [24, 4096, LARGE_BLOCK - 8, LARGE_BLOCK, 3 * LARGE_BLOCK + 5];
    for &align in &[8, 64, 4096] {
        for &size in &sizes {
            for &new_size in &sizes {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let ptr = GLOBAL.alloc(layout);
                    assert!(!ptr.is_null());
                    assert_eq!(ptr as usize % align, 0, "alignment {align}, size {size}");
                    for i in 0..size {
                        *ptr.add(i) = pattern(i);
                    }
                    let moved = GLOBAL.realloc(ptr, layout, new_size);
                    assert!(!moved.is_null());
                    assert_eq!(moved as usize % align, 0, "alignment {align} after realloc");
                    for i in 0..size.min(new_size) {
                        assert_eq!(
                            *moved.add(i),
                            pattern(i),
                            "{size} → {new_size} bytes, byte {i}"
                        );
                    }
                    GLOBAL.dealloc(moved, Layout::from_size_align(new_size, align).unwrap());
                }
            }
        }
    }
    // A zeroed block is zero even where a dirty block of the same size was just freed.
    for &size in &sizes {
        for &align in &[8, 4096] {
            let layout = Layout::from_size_align(size, align).unwrap();
            unsafe {
                let dirty = GLOBAL.alloc(layout);
                std::ptr::write_bytes(dirty, 0xAB, size);
                GLOBAL.dealloc(dirty, layout);
                let zeroed = GLOBAL.alloc_zeroed(layout);
                assert!(
                    (0..size).all(|i| *zeroed.add(i) == 0),
                    "{size} bytes not zeroed"
                );
                GLOBAL.dealloc(zeroed, layout);
            }
        }
    }
}

/// Minor page faults of this process so far.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn minor_faults() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    usage.ru_minflt
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_freed_large_block_is_reused_without_page_faults() {
    let _turn = SERIAL.lock().unwrap();
    let size = 256 << 20;
    let pages = (size / 4096) as i64;
    let first = vec![1u8; size];
    assert_eq!(first[size - 1], 1);
    drop(first);
    // glibc's default serves this with a fresh mmap: one fault per page (65 536 here).
    let before = minor_faults();
    let second = vec![2u8; size];
    assert_eq!(second[size / 2], 2);
    let faults = minor_faults() - before;
    drop(second);
    assert!(
        faults < pages / 20,
        "{faults} page faults for a {pages}-page block that was just freed"
    );
}
