/* Test-harness reader of the shared vectors: uncompressed .npz (a stored zip of .npy files, as
 * numpy.savez writes them, zip64 size fields included). Host and semihosted builds only: it
 * reads the whole file with stdio and mallocs; the firmware itself never does either. */
#ifndef EL_TEST_NPZ_H
#define EL_TEST_NPZ_H

#include <stddef.h>
#include <stdint.h>

#define NPZ_MAX_ARRAYS 64
#define NPZ_MAX_DIMS 4

typedef struct {
    char name[64];
    char kind;              /* 'i' signed, 'u' unsigned, 'f' float */
    int itemsize;
    int ndim;
    uint32_t shape[NPZ_MAX_DIMS];
    uint32_t count;
    const uint8_t *data;    /* little-endian */
} npz_array;

typedef struct {
    uint8_t *file;
    size_t size;
    int n;
    npz_array arr[NPZ_MAX_ARRAYS];
} npz_file;

int npz_load(npz_file *z, const char *path, char *err, size_t err_len);
void npz_free(npz_file *z);
const npz_array *npz_get(const npz_file *z, const char *name);
int64_t npz_int(const npz_array *a, uint32_t index);   /* element as int64 (uint64 wraps) */
uint8_t *read_file(const char *path, size_t *size);

#endif
