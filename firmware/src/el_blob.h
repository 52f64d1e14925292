/* The sample-mode blobs of docs/protocol.md section 8 (config, head, weights): fixed-layout
 * little-endian binary, decoded with every field checked in the order of the reference
 * decoder (edgelearn.link.blobs). A failure reports what the device answers:
 *   EL_BLOB_LENGTH: BAD_LENGTH, arg0 = blob length, arg1 = the length its header implies;
 *   EL_BLOB_PARAM:  BAD_PARAM, arg0 = the field's byte offset, arg1 = its value as u32
 *                   (integers two's complement, floats their IEEE-754 bits as f32). */
#ifndef EL_BLOB_H
#define EL_BLOB_H

#include <stdint.h>

#include "el_engine.h"

enum { EL_BLOB_OK = 0, EL_BLOB_LENGTH = 1, EL_BLOB_PARAM = 2 };

typedef struct {
    int kind;                 /* EL_BLOB_* */
    uint32_t arg0, arg1;
    char text[120];
} el_blob_error;

int el_config_decode(const uint8_t *b, uint32_t len, el_config *cfg, el_blob_error *err);
int el_head_decode(const uint8_t *b, uint32_t len, el_head_desc *h, el_blob_error *err);

/* the weights blob of the engine's learning state: its length, and the bytes when out != 0 */
uint32_t el_weights_encode(const el_engine *e, uint8_t *out);

/* check a weights blob against the engine (sizes its own, values in range), then restore it */
int el_weights_apply(el_engine *e, const uint8_t *b, uint32_t len, el_blob_error *err);

#endif
