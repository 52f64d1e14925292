/* One static arena: a bump allocator over a caller-given block (no heap anywhere).
 *
 * Every allocation is named, so that an overflow error says which buffer did not fit and by
 * how much, in the words of edgelearn.memory.arena:
 *   arena: buffer 'hidden.weight' needs 8192 B, 4000 B free of 65536 B (missing 4192 B)
 * The high-water mark is the most bytes ever in use (reported by TELEMETRY).
 */
#ifndef EL_ARENA_H
#define EL_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *base;
    uint32_t size, used, high_water;
    uint32_t align;
    char error[128];       /* text of the last failed allocation */
    uint32_t fail_need, fail_free;   /* its numbers */
    uint8_t keep;          /* 1: allocations keep the bytes they cover (a rebuild in place) */
} el_arena;

/* base NULL: a measuring arena (allocations are counted, nothing is written; the pointers it
 * returns must not be used) */
void el_arena_init(el_arena *a, void *base, uint32_t size, uint32_t align);
/* zeroed block of `bytes` (rounded up to the alignment), or NULL with a->error set */
void *el_arena_alloc(el_arena *a, const char *name, const char *suffix, uint32_t bytes);
void el_arena_reset(el_arena *a);   /* free everything, keep the high-water mark */
uint32_t el_arena_free(const el_arena *a);

#endif
