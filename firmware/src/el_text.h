/* Strict UTF-8 (as Python's decoder: no overlong forms, no surrogates, nothing above
 * U+10FFFF): the image's network and layer names are UTF-8. */
#ifndef EL_TEXT_H
#define EL_TEXT_H

#include <stdint.h>

int el_utf8_valid(const uint8_t *s, uint32_t n);

#endif
