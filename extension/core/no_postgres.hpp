// extension/core/ is the PostgreSQL-free layer of taskq: the worker links it
// and GoogleTest tests it without a server. Including a PostgreSQL header
// here would drag elog/longjmp semantics into code that relies on C++
// exceptions and destructors, so the build fails if one sneaks in.
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "extension/core must not include PostgreSQL headers"
#endif
