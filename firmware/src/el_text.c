#include "el_text.h"

int el_utf8_valid(const uint8_t *s, uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        uint32_t need, cp, min;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i - 1 < need) return 0;
        for (uint32_t k = 1; k <= need; k++) {
            uint8_t t = s[i + k];
            if ((t & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (t & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

static uint32_t ws(const uint8_t *s, uint32_t n, uint32_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

static int hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* a JSON string starting at s[i] == '"'; returns the index after it, or 0 */
static uint32_t string(const uint8_t *s, uint32_t n, uint32_t i)
{
    if (i >= n || s[i] != '"') return 0;
    for (i++; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"') return i + 1;
        if (c < 0x20) return 0;
        if (c == '\\') {
            if (++i >= n) return 0;
            c = s[i];
            if (c == 'u') {
                if (n - i < 5 || !hex(s[i + 1]) || !hex(s[i + 2]) || !hex(s[i + 3]) ||
                    !hex(s[i + 4]))
                    return 0;
                i += 4;
            } else if (!(c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' ||
                         c == 'n' || c == 'r' || c == 't')) {
                return 0;
            }
        }
    }
    return 0;
}

int el_json_string_object(const uint8_t *s, uint32_t n)
{
    if (!el_utf8_valid(s, n)) return 0;
    uint32_t i = ws(s, n, 0);
    if (i >= n || s[i] != '{') return 0;
    i = ws(s, n, i + 1);
    if (i < n && s[i] == '}') return ws(s, n, i + 1) == n;
    for (;;) {
        if (!(i = string(s, n, i))) return 0;
        i = ws(s, n, i);
        if (i >= n || s[i] != ':') return 0;
        i = ws(s, n, i + 1);
        if (!(i = string(s, n, i))) return 0;
        i = ws(s, n, i);
        if (i >= n) return 0;
        if (s[i] == '}') return ws(s, n, i + 1) == n;
        if (s[i] != ',') return 0;
        i = ws(s, n, i + 1);
    }
}
