#include "el_cobs.h"

size_t el_cobs_encode(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t o = 1, code_at = 0;
    uint8_t code = 1;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

long el_cobs_decode(uint8_t *buf, size_t n)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t code = buf[i++];
        if (code == 0) return -1;
        if ((size_t)(code - 1) > n - i) return -1;
        for (uint8_t k = 1; k < code; k++) {
            if (buf[i] == 0) return -1;
            buf[o++] = buf[i++];
        }
        if (code != 0xFF && i < n) buf[o++] = 0;
    }
    return (long)o;
}
