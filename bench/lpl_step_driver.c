/* The LPL step's cost without Python: bench/bench_lpl_step.py writes a workload (a device
 * image, one 64-byte LPL block for layer LAYER (LAYER_IN inputs, LAYER_OUT neurons), a warm-up
 * input and a measured input, int16 [T][N_IN]) and runs this driver, compiled with a shared
 * library recipe's sources and flags (edgelearn.kernels.cbuild "lib" or "lib-scalar").
 *
 *   lpl_step_driver count IMAGE BLOCK LAYER N_IN LAYER_IN LAYER_OUT WARM X REPS
 *       one engine with LPL on: the warm-up input as one sample, then X as REPS samples; under
 *       valgrind --tool=callgrind the statistics are zeroed after the warm-up (client request),
 *       so the inclusive counts of el_lpl_step and el_net_step1 are those of the REPS samples.
 *       Prints "steps S checksum H": H an FNV-1a hash of the PRNG state, the LPL state and the
 *       layer's weights at the end (equal for every build of the same sources).
 *   lpl_step_driver time IMAGE BLOCK LAYER N_IN LAYER_IN LAYER_OUT WARM X REPS
 *       two engines (LPL on / off) past the same warm-up; REPS rounds, each timing one run of X
 *       on each engine in process CPU time (alternating order); prints the medians in us per
 *       step: "on U off V" (the LPL step costs U - V).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifdef CALLGRIND_ZERO_STATS
#define ZEROES_STATS 1
#else
#define ZEROES_STATS 0             /* no valgrind headers: callgrind counts the warm-up too */
#define CALLGRIND_ZERO_STATS
#endif

/* the shared library's interface (firmware/lib/el_native.c) */
uint32_t el_native_sizeof(int what);
int el_native_check(const uint8_t *img, uint32_t len, void *desc, char *err, uint32_t err_len);
int el_native_engine_load(void *ne, const void *desc, const uint8_t *img, uint32_t len,
                          uint8_t *mem, uint32_t size, int readout, uint32_t seed,
                          uint32_t n_lpl, const uint8_t *layers, const uint8_t *blocks,
                          char *err, uint32_t err_len);
void el_native_engine_set(void *ne, int lpl_on, uint32_t key, uint32_t counter);
void el_native_engine_rng(const void *ne, uint32_t *rng);
void el_native_engine_begin(void *ne);
int el_native_engine_run(void *ne, const void *x, uint32_t width, uint32_t T, void *buf);
void *el_native_engine_ptr(void *ne, int what, uint32_t k, int field);

#define ARENA (1u << 22)

static int16_t step_buf[65536];   /* a step narrowed by el_native_engine_run */

static void fail(const char *what)
{
    fprintf(stderr, "lpl_step_driver: %s\n", what);
    exit(2);
}

static uint8_t *slurp(const char *path, uint32_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail("cannot open an input file");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) fail("cannot read an input file");
    fclose(f);
    *len = (uint32_t)n;
    return b;
}

typedef struct {
    void *desc, *ne;
    uint8_t *arena;
} engine;

static engine load(const uint8_t *img, uint32_t len, const uint8_t *block, uint8_t layer)
{
    engine e;
    char err[256];
    e.desc = calloc(1, el_native_sizeof(0));
    e.ne = calloc(1, el_native_sizeof(2));
    e.arena = calloc(1, ARENA);
    if (el_native_check(img, len, e.desc, err, sizeof err)) fail(err);
    if (el_native_engine_load(e.ne, e.desc, img, len, e.arena, ARENA, 0, 1, 1, &layer, block,
                              err, sizeof err))
        fail(err);
    return e;
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t checksum(engine *e, uint32_t layer_in, uint32_t layer_out)
{
    uint32_t rng[2];
    el_native_engine_rng(e->ne, rng);
    uint64_t h = fnv(1469598103934665603ull, rng, sizeof rng);
    for (int field = 1; field <= 8; field++) {          /* z_prev, mean, var, count, traces */
        const void *a = el_native_engine_ptr(e->ne, 3, 0, field);
        size_t n = field == 1 ? 2u * layer_out : field == 4 ? 4u
                 : field == 5 ? 4u * layer_in : field == 7 || field == 8 ? 0u : 4u * layer_out;
        if (a) h = fnv(h, a, n);
    }
    return h;
}

int main(int argc, char **argv)
{
    if (argc != 11)
        fail("usage: count|time IMAGE BLOCK LAYER N_IN LAYER_IN LAYER_OUT WARM X REPS");
    uint32_t img_len, block_len, warm_len, x_len;
    const uint8_t *img = slurp(argv[2], &img_len), *block = slurp(argv[3], &block_len);
    uint8_t layer = (uint8_t)atoi(argv[4]);
    uint32_t n_in = (uint32_t)atoi(argv[5]), layer_in = (uint32_t)atoi(argv[6]);
    uint32_t layer_out = (uint32_t)atoi(argv[7]);
    const int16_t *warm = (const int16_t *)slurp(argv[8], &warm_len);
    const int16_t *x = (const int16_t *)slurp(argv[9], &x_len);
    int reps = atoi(argv[10]);
    if (block_len != 64 || reps < 1 || !n_in || warm_len % (2 * n_in) || x_len % (2 * n_in))
        fail("the block must be 64 bytes, REPS >= 1, the inputs int16 [T][N_IN]");
    uint32_t t_warm = warm_len / (2 * n_in), t_x = x_len / (2 * n_in);
    int count = !strcmp(argv[1], "count");
    engine e[2];
    for (int k = 0; k < (count ? 1 : 2); k++) {
        e[k] = load(img, img_len, block, layer);
        el_native_engine_set(e[k].ne, 1, 1, 0);
        el_native_engine_begin(e[k].ne);
        el_native_engine_run(e[k].ne, warm, 2, t_warm, step_buf);
    }
    if (count) {
        CALLGRIND_ZERO_STATS;
        for (int r = 0; r < reps; r++) {
            el_native_engine_begin(e[0].ne);
            el_native_engine_run(e[0].ne, x, 2, t_x, step_buf);
        }
        uint8_t *w = el_native_engine_ptr(e[0].ne, 2, layer, 0);
        uint64_t h = fnv(checksum(&e[0], layer_in, layer_out), w, (size_t)layer_in * layer_out);
        printf("steps %u checksum %016llx zeroed %d\n", (unsigned)(reps * t_x),
               (unsigned long long)h, ZEROES_STATS);
        return 0;
    }
    el_native_engine_set(e[1].ne, 0, 1, 0);
    double *t[2] = {malloc(sizeof(double) * reps), malloc(sizeof(double) * reps)};
    for (int r = 0; r < reps; r++)
        for (int q = 0; q < 2; q++) {
            int k = r % 2 ? 1 - q : q;
            el_native_engine_begin(e[k].ne);
            el_native_engine_run(e[k].ne, x, 2, t_x, step_buf);    /* warm the core and caches */
            el_native_engine_begin(e[k].ne);
            double c0 = cpu_seconds();
            el_native_engine_run(e[k].ne, x, 2, t_x, step_buf);
            t[k][r] = 1e6 * (cpu_seconds() - c0) / t_x;
        }
    printf("on %.3f off %.3f\n", median(t[0], reps), median(t[1], reps));
    return 0;
}
