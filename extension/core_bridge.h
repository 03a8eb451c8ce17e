/*
 * core_bridge.h: the C-ABI between the PostgreSQL-facing layer of taskq.so
 * and the C++ core in extension/core/.
 *
 * Every function here is noexcept: the implementation catches every C++
 * exception and reports failure through its return value and an error
 * buffer, so the caller can ereport() with no C++ frame left to unwind.
 * Arguments and results are plain data only.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes the next UUIDv7 of this backend into out[16]. */
bool taskq_bridge_next_uuid(uint8_t out[16], char* err, size_t errlen) noexcept;

#ifdef __cplusplus
}
#endif
