/* hEP head: relaxation, logits, TEACH (see el_head.h). */
#include "el_head.h"

#include <math.h>
#include <string.h>

/* ---- f16 ----------------------------------------------------------------------------------- */

uint16_t el_f64_to_f16(double v)
{
    uint64_t b;
    memcpy(&b, &v, 8);
    uint16_t sign = (uint16_t)((b >> 48) & 0x8000u);
    int exp = (int)((b >> 52) & 0x7FF);
    uint64_t man = b & 0xFFFFFFFFFFFFFull;
    if (exp == 0x7FF) return sign | 0x7C00u | (man ? 0x200u : 0);       /* inf, nan */
    int e = exp - 1023 + 15;                                             /* f16 exponent */
    if (e >= 31) return sign | 0x7C00u;                                  /* overflow */
    uint64_t full = exp ? (man | (1ull << 52)) : man;                    /* 53-bit significand */
    int shift;                                                           /* bits to drop */
    uint16_t out_exp;
    if (e <= 0) {                                                        /* subnormal f16 */
        shift = 52 - 10 + (1 - e);
        out_exp = 0;
        if (shift > 63) return sign;
    } else {
        shift = 42;
        out_exp = (uint16_t)e;
        full &= (1ull << 52) - 1;                                        /* drop the hidden 1 */
    }
    uint64_t q = full >> shift, rem = full & ((1ull << shift) - 1), half = 1ull << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    /* a carry out of the mantissa moves into the exponent field (also subnormal -> normal) */
    return (uint16_t)(sign | (((uint32_t)out_exp << 10) + (uint32_t)q));
}

double el_f16_to_f64(uint16_t h)
{
    int exp = (h >> 10) & 31;
    double man = h & 1023;
    double v;
    if (exp == 0) v = ldexp(man, -24);
    else if (exp == 31) v = man ? NAN : INFINITY;
    else v = ldexp(man + 1024.0, exp - 25);
    return (h & 0x8000u) ? -v : v;
}

/* ---- features ------------------------------------------------------------------------------ */

void el_head_current(const el_engine *e, el_head_sample *s)
{
    s->counts16 = e->features;
    s->counts8 = 0;
    s->scores_f16 = 0;
    s->T = e->T;
}

double el_head_score(const el_engine *e, uint32_t c)
{
    double v = (double)e->output[c];
    if (e->cfg.readout == EL_READOUT_MEAN) v = v / (double)e->T;
    return v * e->out_scale;
}

static uint32_t n_hidden(const el_engine *e) { return e->net.layer[e->feature_layer].n_out; }

/* raw feature j: counts_j / T, then the readout scores */
static double raw_feature(const el_engine *e, const el_head_sample *s, uint32_t j)
{
    uint32_t nh = n_hidden(e);
    if (j < nh) return (double)(s->counts16 ? s->counts16[j] : s->counts8[j]) / (double)s->T;
    if (s->scores_f16) return el_f16_to_f64(s->scores_f16[j - nh]);
    return el_head_score(e, j - nh);
}

static double feature(const el_engine *e, const el_head_sample *s, uint32_t j)
{
    return (raw_feature(e, s, j) - (double)e->head.mean[j]) / (double)e->head.std[j];
}

void el_head_track(el_engine *e)
{
    el_head_sample s;
    el_head_current(e, &s);
    double r = e->cfg.track_features;
    for (uint32_t j = 0; j < e->head.d.sizes[0]; j++) {
        double f = raw_feature(e, &s, j);
        float m = e->head.mean[j];
        double var = (double)e->head.std[j] * (double)e->head.std[j];
        double dm = f - (double)m;
        var += r * (dm * dm - var);
        float step = (float)(r * dm);
        e->head.mean[j] = m + step;
        e->head.std[j] = (float)sqrt(var > 1e-6 ? var : 1e-6);
    }
}

/* ---- relaxation ---------------------------------------------------------------------------- */

typedef struct {
    el_engine *e;
    const el_head_sample *s;
    double beta;
    int label;
    el_f64 *z, *R, *dl, *zc, *Rc, *sr, *J;
    const el_f64 *u;       /* W_1 x + b_1, or NULL (recomputed) */
} relax_ctx;

static double act(int sigmoid, double z) { return sigmoid ? 0.5 * (1.0 + tanh(0.5 * z)) : tanh(z); }

static double act_deriv(int sigmoid, double z)
{
    if (!sigmoid) {
        double c = cosh(z < -350.0 ? -350.0 : (z > 350.0 ? 350.0 : z));
        return 1.0 / (c * c);
    }
    double t = tanh(0.5 * z);
    return 0.25 * (1.0 - t * t);
}

/* start of layer k (1..K) in the flat state */
static uint32_t start_of(const el_head *h, uint32_t k)
{
    uint32_t o = 0;
    for (uint32_t q = 1; q < k; q++) o += h->d.sizes[q];
    return o;
}

static void rates(const el_head *h, const el_f64 *z, el_f64 *s)
{
    uint32_t out = start_of(h, h->d.K), sig = h->d.activation == 1;
    for (uint32_t i = 0; i < out; i++) s[i] = act((int)sig, z[i]);
    for (uint32_t i = out; i < h->N; i++) s[i] = z[i];
}

static void input_product(const el_engine *e, const el_head_sample *s, el_f64 *u)
{
    const el_head *h = &e->head;
    uint32_t n0 = h->d.sizes[0], n1 = h->d.sizes[1];
    for (uint32_t i = 0; i < n1; i++) u[i] = 0.0;
    for (uint32_t j = 0; j < n0; j++) {
        double xj = feature(e, s, j);
        for (uint32_t i = 0; i < n1; i++) u[i] += (double)h->W[0][(size_t)i * n0 + j] * xj;
    }
    for (uint32_t i = 0; i < n1; i++) u[i] = u[i] + (double)h->b[0][i];
}

/* phi = Phi(z) at the context's nudge (the rates of z are left in c->sr) */
static void phi(relax_ctx *c, const el_f64 *z, el_f64 *out)
{
    el_engine *e = c->e;
    const el_head *h = &e->head;
    uint32_t K = h->d.K;
    rates(h, z, c->sr);
    if (c->u) memcpy(out, c->u, sizeof(double) * h->d.sizes[1]);
    else input_product(e, c->s, out);
    uint32_t off = 0;
    for (uint32_t k = 1; k <= K; k++) {
        uint32_t n = h->d.sizes[k], np = h->d.sizes[k - 1];
        el_f64 *o = out + off;
        if (k > 1) {
            const el_f64 *prev = c->sr + off - np;
            for (uint32_t i = 0; i < n; i++) {
                double t = 0.0;
                for (uint32_t j = 0; j < np; j++) t += (double)h->W[k - 1][(size_t)i * np + j] * prev[j];
                o[i] = t + (double)h->b[k - 1][i];
            }
        }
        if (k < K) {
            uint32_t nn = h->d.sizes[k + 1];
            const el_f64 *next = c->sr + off + n;
            for (uint32_t i = 0; i < n; i++) {
                double t = 0.0;
                for (uint32_t q = 0; q < nn; q++) t += next[q] * (double)h->W[k][(size_t)q * n + i];
                o[i] = o[i] + t;
            }
        } else if (c->beta != 0.0) {
            double m = z[off];
            for (uint32_t i = 1; i < n; i++) m = z[off + i] > m ? z[off + i] : m;
            double sum = 0.0;
            for (uint32_t i = 0; i < n; i++) sum += exp(z[off + i] - m);
            for (uint32_t i = 0; i < n; i++) {
                double p = exp(z[off + i] - m) / sum;
                o[i] = o[i] - c->beta * (p - (i == (uint32_t)c->label ? 1.0 : 0.0));
            }
        }
        off += n;
    }
}

static double residual(relax_ctx *c, const el_f64 *z, el_f64 *R)
{
    uint32_t N = c->e->head.N;
    phi(c, z, R);
    double r = 0.0;                          /* max |R|, NaN if any is NaN (numpy's max) */
    for (uint32_t i = 0; i < N; i++) {
        R[i] = z[i] - R[i];
        double a = fabs(R[i]);
        if (a != a) r = a;
        else if (r == r && a > r) r = a;
    }
    return r;
}

/* J = I - A D + beta P at z; then solve J delta = -R by Gaussian elimination with partial
 * pivoting (in place). Returns 0, or -1 for an exactly zero pivot. */
/* LU with partial pivoting of the n x n matrix S in place; piv[i] = the row swapped with i.
   Returns -1 on an exactly zero pivot (J singular). */
static int lu_factor(el_f64 *S, uint32_t n, el_f64 *piv)
{
    for (uint32_t col = 0; col < n; col++) {
        uint32_t pr = col;
        double best = fabs(S[(size_t)col * n + col]);
        for (uint32_t r = col + 1; r < n; r++) {
            double a = fabs(S[(size_t)r * n + col]);
            if (a > best) {
                best = a;
                pr = r;
            }
        }
        if (best == 0.0) return -1;
        piv[col] = (double)pr;
        if (pr != col)
            for (uint32_t q = 0; q < n; q++) {
                double t = S[(size_t)col * n + q];
                S[(size_t)col * n + q] = S[(size_t)pr * n + q];
                S[(size_t)pr * n + q] = t;
            }
        double pv = S[(size_t)col * n + col];
        for (uint32_t r = col + 1; r < n; r++) {
            double f = S[(size_t)r * n + col] / pv;
            S[(size_t)r * n + col] = f;
            if (f == 0.0) continue;
            for (uint32_t q = col + 1; q < n; q++) S[(size_t)r * n + q] -= f * S[(size_t)col * n + q];
        }
    }
    return 0;
}

/* v = S^-1 v with the factors of lu_factor; S == NULL: the identity (S_1) */
static void lu_solve(const el_f64 *S, uint32_t n, const el_f64 *piv, el_f64 *v)
{
    if (!S) return;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t pr = (uint32_t)piv[i];
        if (pr != i) {
            double t = v[i];
            v[i] = v[pr];
            v[pr] = t;
        }
    }
    for (uint32_t i = 1; i < n; i++) {
        double t = v[i];
        for (uint32_t q = 0; q < i; q++) t -= S[(size_t)i * n + q] * v[q];
        v[i] = t;
    }
    for (uint32_t i = n; i-- > 0;) {
        double t = v[i];
        for (uint32_t q = i + 1; q < n; q++) t -= S[(size_t)i * n + q] * v[q];
        v[i] = t / S[(size_t)i * n + i];
    }
}

/* delta = -J^-1 R by block elimination over the layers (section 8.4): S_1 = I,
   S_k = J[k,k] - J[k,k-1] S_{k-1}^-1 J[k-1,k] with J[k,k-1] = -W_k D_{k-1},
   J[k-1,k] = -W_k^T D_k (D_K = I), J[K,K] = I + beta P; the S_k (k >= 2) one after the other
   in c->J, their pivots in Rc, a column in zc (zc and Rc are free during the solve). */
static int newton_step(relax_ctx *c, const el_f64 *z, const el_f64 *R, el_f64 *delta)
{
    const el_head *h = &c->e->head;
    uint32_t N = h->N, K = h->d.K, out = start_of(h, K), nK = h->d.sizes[K];
    int sig = h->d.activation == 1;
    el_f64 *d = c->sr, *v = c->zc, *piv = c->Rc;        /* d = rho'(z), 1 on the output block */
    el_f64 *p = c->zc + (N - nK);                        /* softmax(z_K); v never reaches it */
    for (uint32_t i = 0; i < N; i++) d[i] = i < out ? act_deriv(sig, z[i]) : 1.0;
    if (c->beta != 0.0) {
        double m = z[out], sum = 0.0;
        for (uint32_t i = 1; i < nK; i++) m = z[out + i] > m ? z[out + i] : m;
        for (uint32_t i = 0; i < nK; i++) sum += exp(z[out + i] - m);
        for (uint32_t i = 0; i < nK; i++) p[i] = exp(z[out + i] - m) / sum;
    }
    for (uint32_t i = 0; i < N; i++) delta[i] = -R[i];
    el_f64 *Sp = 0, *S = c->J;                           /* S_{k-1} (NULL: S_1 = I), S_k */
    for (uint32_t k = 2; k <= K; k++) {
        uint32_t n = h->d.sizes[k], np = h->d.sizes[k - 1];
        uint32_t r0 = start_of(h, k), c0 = start_of(h, k - 1);
        const float *W = h->W[k - 1];
        if (Sp && lu_factor(Sp, np, piv + c0)) return -1;
        for (uint32_t j = 0; j < n; j++) {               /* column j of S_k */
            for (uint32_t q = 0; q < np; q++) v[q] = -((double)W[(size_t)j * np + q] * d[r0 + j]);
            lu_solve(Sp, np, piv + c0, v);
            for (uint32_t i = 0; i < n; i++) {
                double t = 0.0;
                for (uint32_t q = 0; q < np; q++) t += (double)W[(size_t)i * np + q] * d[c0 + q] * v[q];
                double jkk = i == j ? 1.0 : 0.0;
                if (k == K && c->beta != 0.0) jkk += c->beta * ((i == j ? p[i] : 0.0) - p[i] * p[j]);
                S[(size_t)i * n + j] = jkk + t;          /* J[k,k] - (-W D) v */
            }
        }
        for (uint32_t q = 0; q < np; q++) v[q] = delta[c0 + q];   /* y_k = b_k - J[k,k-1] S^-1 y_{k-1} */
        lu_solve(Sp, np, piv + c0, v);
        for (uint32_t i = 0; i < n; i++) {
            double t = 0.0;
            for (uint32_t q = 0; q < np; q++) t += (double)W[(size_t)i * np + q] * d[c0 + q] * v[q];
            delta[r0 + i] += t;
        }
        Sp = S;
        S += (size_t)n * n;
    }
    if (Sp && lu_factor(Sp, nK, piv + out)) return -1;
    lu_solve(Sp, nK, piv + out, delta + out);            /* x_K = S_K^-1 y_K */
    for (uint32_t k = K; k >= 2; k--) {                  /* x_{k-1} = S^-1 (y_{k-1} - J[k-1,k] x_k) */
        uint32_t n = h->d.sizes[k], np = h->d.sizes[k - 1];
        uint32_t r0 = start_of(h, k), c0 = start_of(h, k - 1);
        const float *W = h->W[k - 1];
        for (uint32_t q = 0; q < np; q++) {
            double t = 0.0;
            for (uint32_t i = 0; i < n; i++) t += (double)W[(size_t)i * np + q] * d[r0 + i] * delta[r0 + i];
            delta[c0 + q] += t;
        }
        Sp = k - 1 >= 2 ? Sp - (size_t)np * np : 0;
        lu_solve(Sp, np, piv + c0, delta + c0);
    }
    return 0;
}

/* relax(beta, z, cold) in place on c->z; returns 1 when converged */
static int relax(relax_ctx *c, int cold)
{
    el_engine *e = c->e;
    const el_head_desc *d = &e->head.d;
    uint32_t N = e->head.N;
    double g = d->damping;
    double r = residual(c, c->z, c->R);
    uint32_t it = 0;
    if (cold) {
        while (it < d->max_steps && r > d->newton_switch) {
            for (uint32_t i = 0; i < N; i++) c->z[i] = c->z[i] - g * c->R[i];
            r = residual(c, c->z, c->R);
            it++;
            if ((it & 15) == 0 && e->keepalive) e->keepalive(e->keepalive_ctx);
        }
    }
    uint32_t n = 0;
    while (n < d->max_iter && !(r < d->tol)) {
        n++;
        if (e->keepalive) e->keepalive(e->keepalive_ctx);
        if (newton_step(c, c->z, c->R, c->dl))
            for (uint32_t i = 0; i < N; i++) c->dl[i] = -g * c->R[i];
        int accepted = 0;
        double alpha = 1.0, rc = 0.0;
        for (int t = 0; t < 4; t++) {
            for (uint32_t i = 0; i < N; i++) c->zc[i] = c->z[i] + alpha * c->dl[i];
            rc = residual(c, c->zc, c->Rc);
            if (rc < r || rc < d->tol) {
                accepted = 1;
                break;
            }
            alpha *= 0.5;
        }
        if (!accepted) {
            memcpy(c->zc, c->z, sizeof(double) * N);
            for (int t = 0; t < 10; t++) {
                phi(c, c->zc, c->Rc);
                for (uint32_t i = 0; i < N; i++) c->zc[i] = c->zc[i] + g * (c->Rc[i] - c->zc[i]);
            }
            rc = residual(c, c->zc, c->Rc);
        }
        memcpy(c->z, c->zc, sizeof(double) * N);
        memcpy(c->R, c->Rc, sizeof(double) * N);
        r = rc;
    }
    return r < d->tol;
}

static void ctx_init(relax_ctx *c, el_engine *e, const el_head_sample *s)
{
    uint32_t N = e->head.N;
    el_f64 *w = e->head.work;
    c->e = e;
    c->s = s;
    c->beta = 0.0;
    c->label = -1;
    c->z = w;
    c->R = w + N;
    c->dl = w + 2 * N;
    c->zc = w + 3 * N;
    c->Rc = w + 4 * N;
    c->sr = w + 5 * N;
    c->J = w + 6 * N;
    c->u = 0;
    if (e->head.nudged) {
        input_product(e, s, e->head.nudged);
        c->u = e->head.nudged;
    }
}

int el_head_logits(el_engine *e, const el_head_sample *s, uint8_t *logits_f32)
{
    relax_ctx c;
    ctx_init(&c, e, s);
    for (uint32_t i = 0; i < e->head.N; i++) c.z[i] = 0.0;
    relax(&c, 1);
    uint32_t out = start_of(&e->head, e->head.d.K), n = e->head.d.sizes[e->head.d.K];
    int best = 0;
    for (uint32_t i = 0; i < n; i++) {
        double v = c.z[out + i];
        if (v > c.z[out + best]) best = (int)i;
        float f = (float)v;
        memcpy(logits_f32 + 4 * i, &f, 4);
    }
    return best;
}

/* ---- TEACH --------------------------------------------------------------------------------- */

static int finite(double v) { return v == v && v - v == 0.0; }

/* one real-hEP update on sample s with label y (section 8.4, step 3) */
static void update(el_engine *e, const el_head_sample *s, int y)
{
    el_head *h = &e->head;
    const el_config *cfg = &e->cfg;
    uint32_t K = h->d.K, N = h->N;
    relax_ctx c;
    ctx_init(&c, e, s);
    for (uint32_t i = 0; i < N; i++) c.z[i] = 0.0;
    int ok = relax(&c, 1);
    uint32_t n_acc = 0;
    for (uint32_t k = 1; k <= K; k++)
        n_acc += h->d.sizes[k] + (k >= 2 ? (uint32_t)h->d.sizes[k] * h->d.sizes[k - 1] : 0);
    for (uint32_t i = 0; i < n_acc; i++) h->acc[i] = 0.0;
    double b = cfg->amplitude;
    for (uint32_t j = 0; j < cfg->J; j++) {
        double t = cfg->nodes[j];
        if (t != 0.0) {
            c.beta = b * t;
            c.label = y;
            ok &= relax(&c, 0);
        }
        rates(h, c.z, c.sr);
        double cw = -cfg->weights[j] / b;
        el_f64 *a = h->acc;
        uint32_t off = 0;
        for (uint32_t k = 1; k <= K; k++) {                 /* accB_k */
            for (uint32_t i = 0; i < h->d.sizes[k]; i++) a[i] += cw * c.sr[off + i];
            a += h->d.sizes[k];
            off += h->d.sizes[k];
        }
        off = h->d.sizes[1];
        for (uint32_t k = 2; k <= K; k++) {                 /* accW_k = s_k s_{k-1}^T */
            uint32_t n = h->d.sizes[k], np = h->d.sizes[k - 1];
            for (uint32_t i = 0; i < n; i++)
                for (uint32_t q = 0; q < np; q++)
                    a[(size_t)i * np + q] += cw * (c.sr[off + i] * c.sr[off - np + q]);
            a += (size_t)n * np;
            off += n;
        }
    }
    for (uint32_t i = 0; i < n_acc && ok; i++) ok = finite(h->acc[i]);
    if (!ok) {
        e->c->hep_nonconverged++;
        return;
    }
    double lr = cfg->lr;
    uint32_t n0 = h->d.sizes[0], n1 = h->d.sizes[1];
    /* two passes: every new f32 value finite, then write (the same arithmetic twice) */
    for (int write = 0; write < 2; write++) {
        const el_f64 *accB = h->acc, *accW = h->acc;
        for (uint32_t k = 1; k <= K; k++) accW += h->d.sizes[k];
        for (uint32_t k = 1; k <= K; k++) {
            uint32_t n = h->d.sizes[k], np = h->d.sizes[k - 1];
            float *W = h->W[k - 1], *bb = h->b[k - 1];
            for (uint32_t i = 0; i < n; i++) {
                for (uint32_t q = 0; q < np; q++) {
                    size_t at = (size_t)i * np + q;
                    double g = k == 1 ? accB[i] * feature(e, s, q) : accW[at];
                    float v = (float)((double)W[at] - lr * g);
                    if (!write && !finite(v)) goto rejected;
                    if (write) W[at] = v;
                }
                float v = (float)((double)bb[i] - lr * accB[i]);
                if (!write && !finite(v)) goto rejected;
                if (write) bb[i] = v;
            }
            accB += n;
            if (k >= 2) accW += (size_t)n * np;
        }
    }
    (void)n0;
    (void)n1;
    e->c->hep_updates++;
    return;
rejected:
    e->c->hep_rejected++;
}

void el_head_teach(el_engine *e, uint32_t label)
{
    el_head *h = &e->head;
    const el_config *cfg = &e->cfg;
    uint32_t R = cfg->replay, nh = n_hidden(e), no = e->net.n_out;
    el_head_sample cur;
    el_head_current(e, &cur);
    if (R && e->T <= 255) {                        /* store before learning from it */
        int32_t pos = h->r_ring[0], fill = h->r_ring[1];
        for (uint32_t j = 0; j < nh; j++)
            h->r_counts[(size_t)pos * nh + j] = (uint8_t)(e->features[j] > 255 ? 255 : e->features[j]);
        for (uint32_t c = 0; c < no; c++)
            h->r_scores[(size_t)pos * no + c] = el_f64_to_f16(el_head_score(e, c));
        h->r_labels[pos] = (uint8_t)label;
        h->r_lengths[pos] = (uint16_t)e->T;
        h->r_ring[0] = (int32_t)((pos + 1) % (int32_t)R);
        h->r_ring[1] = fill + 1 < (int32_t)R ? fill + 1 : (int32_t)R;
    }
    update(e, &cur, (int)label);
    if (R && h->r_ring[1] > 0) {
        uint32_t draws = cfg->repeats - 1u, fill = (uint32_t)h->r_ring[1];
        el_rng r0 = e->rng;
        el_rng_advance(&e->rng, draws);
        for (uint32_t i = 0; i < draws; i++) {
            uint32_t q = el_rng_word(r0, i) % fill;
            el_head_sample s;
            s.counts16 = 0;
            s.counts8 = h->r_counts + (size_t)q * nh;
            s.scores_f16 = h->r_scores + (size_t)q * no;
            s.T = h->r_lengths[q];
            update(e, &s, h->r_labels[q]);
        }
    }
}
