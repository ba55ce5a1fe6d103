// Internal: OpenMP after fork().
//
// libgomp keeps its worker threads in a pool that a forked child inherits as data but not as
// threads: the child's first parallel region of more than one thread waits for the missing
// workers for ever (GCC's libgomp does not support OpenMP on both sides of a fork). The core
// therefore remembers whether it has started a team, and a process forked after that runs every
// region on its calling thread (resolve_threads returns 1 there). The values do not depend on
// the thread count, so a forked child computes the same bits, only on one core.
#pragma once

namespace memsgd {
namespace detail {

// Call before starting a parallel region of more than one thread (registers the fork handler
// on first use).
void note_thread_team();

// True in a process forked (directly or through its ancestors) after note_thread_team() ran.
bool forked_after_threads();

}  // namespace detail
}  // namespace memsgd
