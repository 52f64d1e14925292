#include "el_arena.h"

#include <stdio.h>
#include <string.h>

void el_arena_init(el_arena *a, void *base, uint32_t size, uint32_t align)
{
    a->base = (uint8_t *)base;
    a->size = size;
    a->used = a->high_water = 0;
    a->align = align ? align : 4;
    a->error[0] = 0;
    a->keep = 0;
}

void *el_arena_alloc(el_arena *a, const char *name, const char *suffix, uint32_t bytes)
{
    uint32_t need = (bytes + a->align - 1) / a->align * a->align;
    uint32_t free_b = a->size - a->used;
    if (need < bytes || need > free_b) {
        a->fail_need = need;
        a->fail_free = free_b;
        snprintf(a->error, sizeof a->error,
                 "arena: buffer '%s%s' needs %lu B, %lu B free of %lu B (missing %lu B)",
                 name, suffix ? suffix : "", (unsigned long)need, (unsigned long)free_b,
                 (unsigned long)a->size, (unsigned long)(need - free_b));
        return 0;
    }
    static uint64_t dummy;
    uint8_t *p = a->base ? a->base + a->used : (uint8_t *)&dummy;
    a->used += need;
    if (a->used > a->high_water) a->high_water = a->used;
    if (a->base && !a->keep) memset(p, 0, need);
    return p;
}

void el_arena_reset(el_arena *a) { a->used = 0; }

uint32_t el_arena_free(const el_arena *a) { return a->size - a->used; }
