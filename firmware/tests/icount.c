/* Instructions per network step of the device engine on Cortex-M (QEMU -icount shift=0: one
 * instruction = 1 ns of virtual time; SysTick on the 25 MHz CPU clock ticks every 40).
 *
 *   el_icount IMAGE.bin ROWS.bin N_STEPS BLOCK.bin LAYER
 *
 * ROWS.bin: N_STEPS rows of n_in int8 inputs. Runs the steps twice through the same engine
 * (sample mode, as SAMPLE does): inference alone, then with LPL on LAYER (BLOCK.bin: its
 * 64-byte LPL block) after a warm-up of `warmup` steps. Each step is timed alone (SysTick read
 * before and after el_engine_step, so one step reads +-40 instructions, unbiased) and the
 * activity the cost model prices (firmware_sim/cycles.py) is counted outside the timed part.
 * Prints per run
 *   run <infer|lpl> <steps> <n_layers> <lpl layer or -1>
 *   layer <k> <n_in> <n_out>                                  (per layer)
 *   s <instructions> <active_0> <fired_0> <values_0> <active_1> ...     (per step)
 * active_k: nonzero inputs of layer k; fired_k: its spikes of the previous step when it is
 * recurrent (R), else 0; values_k: 1 when an active input is not 1 (the kernel sums values).
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

static uint32_t nonzero(const uint8_t *v, uint32_t n)
{
    uint32_t c = 0;
    for (uint32_t j = 0; j < n; j++) c += v[j] != 0;
    return c;
}

static uint32_t not01(const uint8_t *v, uint32_t n)
{
    for (uint32_t j = 0; j < n; j++)
        if (v[j] > 1) return 1;
    return 0;
}

/* one run of `steps` steps, reported as above */
static void run(const char *what, const int8_t *rows, uint32_t n_in, uint32_t steps, int lpl)
{
    el_net *net = &eng.net;
    char b1[24], b2[24];
    printf("run %s %s %u %d\n", what, u64s(steps, b1), (unsigned)net->n_layers, lpl);
    for (uint32_t k = 0; k < net->n_layers; k++)
        printf("layer %u %u %u\n", (unsigned)k, (unsigned)net->layer[k].n_in,
               (unsigned)net->layer[k].n_out);
    el_engine_begin_sample(&eng);
    for (uint32_t t = 0; t < steps; t++) {
        const uint8_t *x = (const uint8_t *)rows + (size_t)t * n_in;
        uint32_t fired[EL_MAX_LAYERS];
        for (uint32_t k = 0; k < net->n_layers; k++)
            fired[k] = net->layer[k].vT && net->spk[k] ? nonzero(net->spk[k], net->layer[k].n_out)
                                                       : 0;
        uint64_t t0 = now_ticks();
        el_engine_step(&eng, x, EL_X_INT8, 1, 0);
        uint64_t ins = (now_ticks() - t0) * NS_PER_TICK;
        printf("s %s", u64s(ins, b2));
        for (uint32_t k = 0; k < net->n_layers; k++) {
            uint32_t a = k == 0 ? nonzero(x, n_in)
                                : (net->spk[k - 1] ? nonzero(net->spk[k - 1], net->layer[k].n_in)
                                                   : net->layer[k].n_in);
            printf(" %u %u %u", (unsigned)a, (unsigned)fired[k], (unsigned)(k == 0 && not01(x, n_in)));
        }
        printf("\n");
    }
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
    run("infer", rows, n_in, steps, -1);
    eng.lpl_on = 1;
    uint32_t warm = eng.cfg.lpl[0].warmup << eng.cfg.lpl[0].epoch_log2;   /* warmup: epochs */
    for (uint32_t t = 0; t < warm; t++)                  /* past the warm-up */
        el_engine_step(&eng, rows + (size_t)(t % steps) * n_in, EL_X_INT8, 1, 0);
    run("lpl", rows, n_in, steps, (int)layer);
    return 0;
}
