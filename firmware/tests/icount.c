/* Instructions per network step of the device engine on Cortex-M (QEMU -icount shift=0: one
 * instruction = 1 ns of virtual time; SysTick on the 25 MHz CPU clock ticks every 40).
 *
 *   el_icount IMAGE.bin ROWS.bin N_STEPS BLOCK.bin LAYER
 *
 * ROWS.bin: N_STEPS rows of n_in int8 inputs. Runs the steps twice through the same engine
 * (sample mode, as SAMPLE does): inference alone, then with LPL on LAYER (BLOCK.bin: its
 * 64-byte LPL block) after a warm-up of `warmup` steps, and prints
 *   instructions <infer|lpl> <total> <steps> <active inputs summed over layers and steps>
 * Semihosted build only (files and output through the host).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "el_engine.h"
#include "el_lpl_codes.h"
#include "npz.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define NS_PER_TICK 40u

static uint8_t arena[1 << 20] __attribute__((aligned(8)));
static el_engine eng;
static el_counters counters;
static volatile uint32_t wraps;

void el_port_systick(void) { wraps++; }

static uint64_t now_ticks(void)
{
    uint32_t w, v;
    do {
        w = wraps;
        v = SYST_CVR;
    } while (w != wraps);
    return (uint64_t)w * 0x1000000u + (0xFFFFFFu - v);
}

/* decimal text of a u64 (newlib-nano's printf has no %llu) */
static const char *u64s(uint64_t v, char *buf)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return buf;
}

static uint64_t run(const int8_t *rows, uint32_t n_in, uint32_t steps, uint64_t *active)
{
    *active = 0;
    el_engine_begin_sample(&eng);
    uint64_t t0 = now_ticks();
    for (uint32_t t = 0; t < steps; t++) el_engine_step(&eng, rows + (size_t)t * n_in, EL_X_INT8, 1, 0);
    uint64_t t1 = now_ticks();
    for (uint32_t t = 0; t < steps; t++)
        for (uint32_t j = 0; j < n_in; j++) *active += rows[(size_t)t * n_in + j] != 0;
    return (t1 - t0) * NS_PER_TICK;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        printf("usage: el_icount IMAGE.bin ROWS.bin N_STEPS BLOCK.bin LAYER\n");
        return 2;
    }
    size_t len, nrows, nblk;
    uint8_t *img = read_file(argv[1], &len);
    int8_t *rows = (int8_t *)read_file(argv[2], &nrows);
    uint8_t *blk = read_file(argv[4], &nblk);
    uint32_t steps = (uint32_t)strtoul(argv[3], 0, 0), layer = (uint32_t)strtoul(argv[5], 0, 0);
    char err[160];
    el_image_desc desc;
    if (!img || !rows || !blk || el_image_check(img, (uint32_t)len, &desc, err, sizeof err)) {
        printf("FAIL inputs: %s\n", img ? err : "unreadable");
        return 1;
    }
    el_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.seed = 1;
    cfg.n_lpl = 1;
    cfg.lpl_layer[0] = (uint8_t)layer;
    uint32_t off, val;
    if (nblk != 64 || el_lpl_block_parse(blk, &cfg.lpl[0], &cfg.lpl_var_init[0], &off, &val)) {
        printf("FAIL LPL block\n");
        return 1;
    }
    el_arena a;
    el_arena_init(&a, arena, sizeof arena, 4);
    if (el_engine_build(&eng, &desc, img, (uint32_t)len, &cfg, 0, &a, 0, &counters)) {
        printf("FAIL %s\n", a.error);
        return 1;
    }
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 7u;
    uint32_t n_in = desc.n_in;
    if (nrows < (size_t)steps * n_in) {
        printf("FAIL rows\n");
        return 1;
    }
    uint64_t act;
    uint64_t t_inf = run(rows, n_in, steps, &act);
    char b1[24], b2[24], b3[24];
    printf("instructions infer %s %s %s\n", u64s(t_inf, b1), u64s(steps, b2), u64s(act, b3));
    eng.lpl_on = 1;
    uint32_t warm = eng.cfg.lpl[0].warmup;
    for (uint32_t t = 0; t < warm; t++)                  /* past the warm-up */
        el_engine_step(&eng, rows + (size_t)(t % steps) * n_in, EL_X_INT8, 1, 0);
    uint64_t t_lpl = run(rows, n_in, steps, &act);
    printf("instructions lpl %s %s %s\n", u64s(t_lpl, b1), u64s(steps, b2), u64s(act, b3));
    return 0;
}
