/* Test support: glibc's count of heap bytes in use (mallinfo2 is not in Swift's Glibc module). */
#ifndef HEAP_PROBE_H
#define HEAP_PROBE_H
#include <stddef.h>
/* Bytes the program holds from malloc: in the arenas plus in mmapped chunks (0 where mallinfo2 does not exist). */
size_t heap_probe_in_use(void);
#endif
