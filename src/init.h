/* init.h - `luaparty init DIR`: writes a small working project. */
#ifndef LP_INIT_H
#define LP_INIT_H

/* Returns the process exit code. */
int init_project(const char *dir);

#endif
