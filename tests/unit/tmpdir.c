/* tmpdir.c - temporary directories for the tests that need files
 * (storage, config, the command line's project directory). */
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[128];

static void remove_tmpdir(void *dir) { unit_remove_tree(dir); }

const char *unit_tmpdir(const char *label)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lp-unit-%s-XXXXXX", label);
    ASSERT_MSG(mkdtemp(tmpdir) != NULL, "mkdtemp %s: %s", tmpdir, strerror(errno));
    unit_on_fail(remove_tmpdir, tmpdir); /* a failed test leaves no litter */
    return tmpdir;
}

/* rm -r for the small trees the tests make */
void unit_remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        unit_remove_tree(sub);
    }
    closedir(d);
    rmdir(path);
}

void unit_write_file(const char *dir, const char *rel, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    /* mkdir -p of everything before the last slash of rel */
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')); p++) {
        *p = 0;
        ASSERT_MSG(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
        *p = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_MSG(fd >= 0, "open %s: %s", path, strerror(errno));
    ASSERT_EQ(write(fd, data, len), (ssize_t)len);
    close(fd);
}
