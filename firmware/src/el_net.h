/* A network from a version-1 device image (docs/fixed-point.md section 7), laid out in an arena.
 *
 * el_image_check() validates an image without allocating (docs/protocol.md section 9, and what
 * the host's decoder edgelearn.kernels.image.decode_image refuses: layer names must be
 * UTF-8 identifiers and distinct, layer 0's input_scale that of the header (rtol 1e-6) and
 * the later layers' 1), with a one-line reason; the metadata is opaque (skipped);
 * el_net_load() then copies the integers into the arena: int8 weights transposed to
 * input-major, neuron constants, state, spike vectors. The float fields of the image (scales,
 * dt) are only validated; the device computes with integers. el_net_snapshot() writes the
 * running network (learned weights included) back as an image, byte for byte what the host's
 * to_image() writes for the same network.
 */
#ifndef EL_NET_H
#define EL_NET_H

#include <stdint.h>

#include "el_arena.h"
#include "el_lif.h"

#ifndef EL_MAX_LAYERS
#define EL_MAX_LAYERS 64          /* docs/protocol.md section 9; a build for one model may
                                     define fewer (static RAM: one el_layer per layer) */
#endif
#define EL_MAX_UNITS 65535u       /* per layer (index lists are uint16) */

enum {
    EL_IMG_F_SPIKING = 1, EL_IMG_F_RECURRENT = 2, EL_IMG_F_BIAS = 4, EL_IMG_F_RESET_ZERO = 8,
    EL_IMG_F_RESET_IMMEDIATE = 16
};

typedef struct {
    uint32_t n_in, n_out, flags;
    uint8_t state_bits;
    int8_t w_shift, v_shift;
    uint32_t name_off, name_len;           /* into the image */
    uint32_t w_off, v_off, b_off, t_off, a_off, d_off;   /* array offsets (0: absent) */
} el_image_layer;

typedef struct {
    uint32_t n_layers, n_in;
    uint8_t input_bits;
    el_image_layer layer[EL_MAX_LAYERS];
} el_image_desc;

/* 0 when `img` is a valid image; else -1 with a one-line reason in err */
int el_image_check(const uint8_t *img, uint32_t len, el_image_desc *desc, char *err,
                   uint32_t err_len);

typedef struct {
    el_image_desc desc;
    const uint8_t *image;              /* the committed image (flash); read by the snapshot */
    uint32_t image_len;
    uint32_t n_layers, n_in, n_out;
    uint8_t input_bits, state_bits_max, output_spiking;
    el_layer layer[EL_MAX_LAYERS];
    int32_t *cur[EL_MAX_LAYERS], *mem[EL_MAX_LAYERS];
    uint8_t *spk[EL_MAX_LAYERS];       /* NULL for a readout */
    void *input;                       /* [batch][n_in] the step's input: int8, or int16 when
                                          input_bits > 8 (input_kind) */
    int input_kind;                    /* EL_X_INT8 or EL_X_INT16 */
    int32_t *output;                   /* [n_out] */
    el_step_lists lists;               /* `kernel.scratch` (el_net_take_scratch) */
    uint32_t list_len;                 /* m: the widest layer input or output */
    int batch;
} el_net;

/* Lay the network of a checked image out in the arena for `batch` sequences (1 on a device):
 * `input`, then per layer weight, recurrent, bias, consts, state, spikes (docs/protocol.md
 * section 14). fill: copy the image's integers in (0: keep what the buffers hold, a rebuild in
 * place; or a measuring arena). The scratch buffer is not taken here (el_net_take_scratch).
 * Returns 0, or -1 with the arena's error text (NO_MEMORY). */
int el_net_load(el_net *net, const el_image_desc *desc, const uint8_t *img, uint32_t len,
                el_arena *arena, int batch, int fill);

/* m of el_step_scratch_bytes: the widest layer input or output of a checked image */
uint32_t el_net_list_len(const el_image_desc *desc);

/* `kernel.scratch`: el_step_scratch_bytes(m), the lists of one step */
int el_net_take_scratch(el_net *net, el_arena *arena);

void el_net_reset_state(el_net *net);

/* One step: x [batch][n_in] of kind x_kind (EL_X_*; binary: all values 0/1), output in
 * net->spk[last] (spiking) or net->mem[last] (readout). clips [n_layers] or NULL. */
void el_net_step(el_net *net, const void *x, int x_kind, int binary, int mode, el_clip *clips);

/* One step of sequence b (x: its [n_in] input; binary -1: find out); info [n_layers] (may be
 * NULL) receives what each layer saw. */
void el_net_step1(el_net *net, int b, const void *x, int x_kind, int binary, int mode,
                  el_clip *clips, el_step_info *info);

/* the network as a device image with the current weights: writes image_len bytes to out */
void el_net_snapshot(const el_net *net, uint8_t *out);

#endif
