#include "npz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return le16(p) | (le16(p + 2) << 16); }
static uint64_t le64(const uint8_t *p) { return le32(p) | ((uint64_t)le32(p + 4) << 32); }

uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = (uint8_t *)malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = (uint8_t *)realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0) break;
        n += got;
    }
    fclose(f);
    *size = n;
    return buf;
}

static int parse_npy(npz_array *a, const uint8_t *p, size_t n, char *err, size_t err_len)
{
    if (n < 10 || memcmp(p, "\x93NUMPY", 6) != 0) {
        snprintf(err, err_len, "%s: not an .npy", a->name);
        return -1;
    }
    size_t hl, off;
    if (p[6] == 1) { hl = le16(p + 8); off = 10; }
    else { hl = le32(p + 8); off = 12; }
    if (off + hl > n) return -1;
    char hdr[512];
    size_t m = hl < sizeof hdr - 1 ? hl : sizeof hdr - 1;
    memcpy(hdr, p + off, m);
    hdr[m] = 0;
    const char *d = strstr(hdr, "'descr': '");
    const char *s = strstr(hdr, "'shape': (");
    if (!d || !s || strstr(hdr, "'fortran_order': True")) {
        snprintf(err, err_len, "%s: unsupported npy header %s", a->name, hdr);
        return -1;
    }
    d += 10;
    if (d[0] != '<' && d[0] != '|') {
        snprintf(err, err_len, "%s: not little-endian", a->name);
        return -1;
    }
    a->kind = d[1];
    a->itemsize = atoi(d + 2);
    s += 10;
    a->ndim = 0;
    a->count = 1;
    while (*s && *s != ')') {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        a->shape[a->ndim] = (uint32_t)strtoul(s, (char **)&s, 10);
        a->count *= a->shape[a->ndim];
        a->ndim++;
    }
    a->data = p + off + hl;
    if ((size_t)a->count * a->itemsize > n - off - hl) {
        snprintf(err, err_len, "%s: truncated data", a->name);
        return -1;
    }
    return 0;
}

int npz_load(npz_file *z, const char *path, char *err, size_t err_len)
{
    memset(z, 0, sizeof *z);
    z->file = read_file(path, &z->size);
    if (!z->file) {
        snprintf(err, err_len, "cannot read %s", path);
        return -1;
    }
    size_t pos = 0;
    while (pos + 30 <= z->size && le32(z->file + pos) == 0x04034b50u) {
        const uint8_t *h = z->file + pos;
        if (le16(h + 8) != 0 || (le16(h + 6) & 8)) {
            snprintf(err, err_len, "%s: compressed or streamed zip entry", path);
            return -1;
        }
        uint64_t size = le32(h + 18);
        uint32_t nlen = le16(h + 26), xlen = le16(h + 28);
        const uint8_t *x = h + 30 + nlen;
        if (size == 0xFFFFFFFFu) {                       /* zip64: sizes in extra field 1 */
            for (uint32_t q = 0; q + 4 <= xlen;) {
                uint32_t id = le16(x + q), len = le16(x + q + 2);
                if (id == 1) size = le64(x + q + 4 + 8);  /* uncompressed, then compressed */
                q += 4 + len;
            }
        }
        if (z->n == NPZ_MAX_ARRAYS) return -1;
        npz_array *a = &z->arr[z->n++];
        uint32_t cp = nlen < sizeof a->name - 1 ? nlen : sizeof a->name - 1;
        memcpy(a->name, h + 30, cp);
        a->name[cp] = 0;
        if (cp > 4 && strcmp(a->name + cp - 4, ".npy") == 0) a->name[cp - 4] = 0;
        size_t data = pos + 30 + nlen + xlen;
        if (data + size > z->size) {
            snprintf(err, err_len, "%s: truncated zip", path);
            return -1;
        }
        if (parse_npy(a, z->file + data, (size_t)size, err, err_len)) return -1;
        pos = data + (size_t)size;
    }
    return 0;
}

void npz_free(npz_file *z) { free(z->file); z->file = 0; }

const npz_array *npz_get(const npz_file *z, const char *name)
{
    for (int i = 0; i < z->n; i++)
        if (strcmp(z->arr[i].name, name) == 0) return &z->arr[i];
    return 0;
}

int64_t npz_int(const npz_array *a, uint32_t i)
{
    const uint8_t *p = a->data + (size_t)i * a->itemsize;
    switch (a->itemsize) {
    case 1: return a->kind == 'u' ? (int64_t)p[0] : (int64_t)(int8_t)p[0];
    case 2: return a->kind == 'u' ? (int64_t)le16(p) : (int64_t)(int16_t)le16(p);
    case 4: return a->kind == 'u' ? (int64_t)le32(p) : (int64_t)(int32_t)le32(p);
    default: return (int64_t)le64(p);
    }
}
