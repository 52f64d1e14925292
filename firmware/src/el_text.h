/* Text checks a device needs for the image header: strict UTF-8 (as Python's decoder: no
 * overlong forms, no surrogates, nothing above U+10FFFF) and "a JSON object whose values are
 * strings" (RFC 8259 strings and whitespace). */
#ifndef EL_TEXT_H
#define EL_TEXT_H

#include <stdint.h>

int el_utf8_valid(const uint8_t *s, uint32_t n);
int el_json_string_object(const uint8_t *s, uint32_t n);

#endif
