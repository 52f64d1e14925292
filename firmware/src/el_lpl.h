/* Fixed-point LPL, rate form: the integer step of edgelearn.rules.lpl_rate.step_fixed
 * (docs/learning-rules.md; equations in edgelearn/rules/lpl_rate.py), bit for bit.
 *
 * Per step, with x [n_in], z [n_out] in Q.A (A = act_frac, E = ema_frac, P = factor_frac):
 *
 *   filters (optional)  x~ += sshift((x<<E - x~) k, s, word);  x = round_shift(x~, E)  (same z)
 *   d_i   = (z_i << E) - mean_i                                        Q.(A+E)
 *   inv_i = floor(2^(2A+E+20) / (var_i + xi_q))                        Q.20
 *   B_i   = scale(round_shift(d_i inv_i, 20), lam) - scale((z_i - zprev_i) << E, pred)
 *           - scale(round_shift(sum_{k!=i} round_shift(C_ik, E) d_k, 2A), lam_decorr/(n-1))
 *           - scale(round_shift((mean_i - rho_i) inv_i, 20), lam_hom)
 *   p_i   = sat_41( shift(round_shift(B_i gain_i, 12) * eta_k, -(A+E+eta_s-P)) )     Q.P
 *   w_ij += stochastic_shift(p_i x_j, P + A, r_ij), clipped to [min(lo, w), max(hi, w)]
 *   mean += sshift((z<<E - mean) k_m, s_m);  var += sshift((round_shift(d^2, E) - var) k_v, s_v)
 *   C_ik += sshift((round_shift(d_i d_k, E) - C_ik) k_v, s_v)       (with decorrelation)
 *
 * scale(v, (k, s)) = round_shift(v k, s) (s >= 0) or (v k) << -s; a zero coefficient gives 0.
 * An EMA whose s exceeds 32 first round_shifts by s - 32 (fit_shift). PRNG words, in this order
 * of offsets from the counter: pre filter (n_in), post filter (n_out), weights (n_out n_in
 * row-major, "full"; or a_i (n_out) then b_j (n_in), r_ij = a_i + b_j mod 2^32, "dither"; none
 * in warm-up), mean (n_out), var (n_out), C (n_out^2); then the counter advances by all of them.
 *
 * All coefficients arrive as integer codes (the host encodes them; no float on the device).
 */
#ifndef EL_LPL_H
#define EL_LPL_H

#include <stddef.h>
#include <stdint.h>

#include "el_fixed.h"

typedef struct {
    int32_t k;     /* mantissa (0: the coefficient is zero / the filter is off) */
    int32_t s;     /* exponent: value = k 2^-s (scales may have s < 0) */
} el_code;

enum { EL_ROUND_FULL = 0, EL_ROUND_DITHER = 1 };

typedef struct {
    uint8_t act_frac, ema_frac, factor_frac, rounding;
    uint32_t warmup;
    int64_t xi_q;                    /* xi in Q.(2A+E), >= 1 */
    el_code mean, var, pre, post;    /* rate codes (pre/post k = 0: filter off) */
    el_code lam, pred, lam_decorr, lam_hom;  /* lam_decorr already divided by n_out - 1 */
    el_code eta;                     /* eta 2^w_shift of the layer */
    uint8_t decorr;                  /* covariance state and term (lam_decorr > 0) */
    uint8_t hom;                     /* homeostasis term (lam_hom > 0) */
    uint8_t stores_target;           /* rho = each neuron's mean at the end of warm-up */
    int64_t rate_target_q;           /* rho in Q.(A+E) when !stores_target */
    int32_t w_lo, w_hi;              /* integer weight bounds (within int8) */
    uint8_t epoch_log2;              /* e: the rule runs once every 2^e steps (0..6, <= A) */
} el_lpl_params;

/* the arrays of lpl_rate.init_fixed (absent parts NULL) */
typedef struct {
    int16_t *z_prev;      /* [n_out] */
    int32_t *mean, *var;  /* [n_out] */
    int32_t *count;       /* [1] */
    int32_t *pre_trace;   /* [n_in] or NULL */
    int32_t *post_trace;  /* [n_out] or NULL */
    int32_t *cov;         /* [n_out][n_out] or NULL */
    int32_t *target;      /* [n_out] or NULL */
    int32_t *epoch_pre;   /* [n_in] or NULL (epoch_log2 = 0): inputs summed over the epoch */
    int32_t *epoch_post;  /* [n_out] or NULL: spikes summed over the epoch */
    int32_t *epoch_steps; /* [1] or NULL: steps of the epoch so far (0 .. 2^e - 1) */
} el_lpl_state;

typedef struct {
    uint32_t n_changed, n_clipped, n_saturated, skipped;
} el_lpl_stats;

/* bytes of the state arrays (= lpl_rate.Params.extra_state_bytes) and of the step's scratch */
uint32_t el_lpl_state_bytes(const el_lpl_params *p, uint32_t n_in, uint32_t n_out);
uint32_t el_lpl_scratch_bytes(const el_lpl_params *p, uint32_t n_in, uint32_t n_out);

/* An activity vector: int32 values in Q.A (EL_ACT_Q), or integers taken times 2^A: 0/1
 * spikes (EL_ACT_U8), int8 or int16 layer inputs. */
enum { EL_ACT_Q = 0, EL_ACT_U8 = 1, EL_ACT_I8 = 2, EL_ACT_I16 = 3 };
typedef struct {
    const void *v;
    int kind;
} el_act;

/* floor(num / v) as numpy's int64 floor division (the step's inv_i = 2^(2A+E+20) / v) */
int64_t el_lpl_inv(int64_t num, int64_t v);

/* Point the state arrays into `mem` (el_lpl_state_bytes of it, zeroed by the caller) in the
 * field order of lpl_rate.State, and set the initial variance (var_init in Q.(2A+E)). */
void el_lpl_state_bind(el_lpl_state *st, const el_lpl_params *p, uint32_t n_in, uint32_t n_out,
                       void *mem);
void el_lpl_state_init(el_lpl_state *st, const el_lpl_params *p, uint32_t n_in, uint32_t n_out,
                       int32_t var_init_q);

/* One step on weights stored input-major (wT[j * n_out + i] = W[i][j]).
 * pre [n_in], post [n_out]: activities (Q.A, int16 range); gain [n_out] in Q.12 or NULL (1).
 * fast: 0 runs the reference weight update (every synapse), 1 the optimised one (zero rows and
 * columns skipped, dither window search); both give the same integers.
 * Returns 1 when the weight rule ran (not warm-up). */
int el_lpl_step(int8_t *wT, uint32_t n_in, uint32_t n_out, el_act pre, el_act post,
                const int32_t *gain, el_lpl_state *st,
                const el_lpl_params *p, el_rng *rng, void *scratch, int fast,
                el_lpl_stats *stats);

/* The learning epoch (epoch_log2 = e > 0): per time step the activities are summed, and on
 * every 2^e-th step the rule runs once on their epoch means,
 *
 *   acc_pre += x(t);  acc_post += s(t);  n += 1
 *   if n == 2^e:  el_lpl_step(pre = acc_pre << (A - e), post = acc_post << (A - e))  (Q.A,
 *                 exact: acc 2^A / 2^e);  acc_pre = acc_post = 0, n = 0
 *
 * with the codes of one epoch (the host sends rates, warm-up, eta and pred per epoch:
 * lpl_rate.epoch_params). pre is of kind EL_ACT_U8, I8 or I16 (integers), post EL_ACT_U8;
 * the sums live in the state (epoch_pre, epoch_post, epoch_steps), the epoch means in the
 * scratch after el_lpl_step's part (el_lpl_scratch_bytes counts them). PRNG words are drawn
 * only when the rule runs. e = 0: el_lpl_step itself. Returns 1 when the weight rule ran;
 * stats (may be NULL) are the rule step's, zero on the steps that only accumulate. */
int el_lpl_epoch_step(int8_t *wT, uint32_t n_in, uint32_t n_out, el_act pre, el_act post,
                      const int32_t *gain, el_lpl_state *st, const el_lpl_params *p,
                      el_rng *rng, void *scratch, int fast, el_lpl_stats *stats);

/* weight updates run so far by path: reference, sparse, window search (tests read it) */
extern uint32_t el_lpl_path_count[3];
/* rows of the blocked window search (host builds) so far: scanned because a bucket their
 * narrow window touches is marked, scanned because their window is wider than a bucket, and
 * narrow rows tested against the bitmap (tests read it) */
extern uint32_t el_lpl_window_rows[3];

#endif
