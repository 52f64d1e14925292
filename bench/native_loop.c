/* The "plain compiled loop" of bench/bench_native.py: the least code that runs the same
 * integer network step (docs/fixed-point.md section 5, reset by subtraction, int8 weights
 * stored input-major, int16-range state in int32, event-driven input and recurrence), with no
 * checks, no arena, no general cases. The benchmark compiles it with the same compiler and
 * flags as the shared library and calls it once per sequence, so the difference to the
 * firmware's fast path is the cost of its generality.
 *
 * layer k: wT [n_in][n_out], vT [n_out][n_out] or NULL, alpha, beta (0..4096), thr, shifts.
 */
#include <stdint.h>
#include <string.h>

typedef struct {
    int n_in, n_out, w_shift, v_shift, spiking;
    const int8_t *wT, *vT;
    const int32_t *alpha, *beta, *thr;
} loop_layer;

static int32_t shift(int32_t a, int s) { return s >= 0 ? a * (1 << s) : (a + (1 << (-s - 1))) >> -s; }

/* x [T][B][n_in] 0/1; state cur/mem [L][B][n_out]; out [T][B][n_out] spikes or membrane */
void loop_run(const loop_layer *L, int n_layers, int T, int B, const uint8_t *x, int32_t *cur,
              int32_t *mem, uint8_t *spk, int32_t *out, int32_t *acc, int32_t *rec,
              int32_t *list)
{
    int max_n = 0;
    for (int k = 0; k < n_layers; k++)
        if (L[k].n_out > max_n) max_n = L[k].n_out;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            const uint8_t *in = x + ((size_t)t * B + b) * L[0].n_in;
            for (int k = 0; k < n_layers; k++) {
                const loop_layer *l = &L[k];
                int n = l->n_out, na = 0;
                int32_t *cu = cur + ((size_t)k * B + b) * max_n, *me = mem + ((size_t)k * B + b) * max_n;
                uint8_t *so = spk + ((size_t)k * B + b) * max_n;
                for (int j = 0; j < l->n_in; j++)
                    if (in[j]) list[na++] = j;
                memset(acc, 0, sizeof(int32_t) * n);
                for (int a = 0; a < na; a++) {
                    const int8_t *col = l->wT + (size_t)list[a] * n;
                    for (int i = 0; i < n; i++) acc[i] += col[i];
                }
                if (l->vT) {
                    memset(rec, 0, sizeof(int32_t) * n);
                    for (int q = 0; q < n; q++)
                        if (so[q]) {
                            const int8_t *col = l->vT + (size_t)q * n;
                            for (int i = 0; i < n; i++) rec[i] += col[i];
                        }
                }
                for (int i = 0; i < n; i++) {
                    int32_t c = ((cu[i] * l->alpha[i] + 2048) >> 12) + shift(acc[i], l->w_shift);
                    if (l->vT) c += shift(rec[i], l->v_shift);
                    c = c < -32768 ? -32768 : (c > 32767 ? 32767 : c);
                    int32_t u = ((me[i] * l->beta[i] + 2048) >> 12) + c;
                    int fired = l->spiking && me[i] > l->thr[i];
                    if (fired) u -= l->thr[i];
                    u = u < -32768 ? -32768 : (u > 32767 ? 32767 : u);
                    cu[i] = c;
                    me[i] = u;
                    so[i] = (uint8_t)(l->spiking && u > l->thr[i]);
                }
                in = so;
                if (k == n_layers - 1) {
                    int32_t *o = out + ((size_t)t * B + b) * n;
                    for (int i = 0; i < n; i++) o[i] = l->spiking ? so[i] : me[i];
                }
            }
        }
}
