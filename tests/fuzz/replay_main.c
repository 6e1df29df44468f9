/* tests/fuzz/replay_main.c: replays corpus files through LLVMFuzzerTestOneInput (non-libFuzzer
 * builds). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLAY_MAX_INPUT (1u << 20) /* larger corpus files are an error, not a slow test */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds one file to the target; returns 0 or -1 (already reported). */
static int replay_file(const char *path)
{
    static uint8_t buf[REPLAY_MAX_INPUT + 1];
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    int bad = ferror(f) || n > REPLAY_MAX_INPUT;
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: unreadable or larger than %u bytes\n", path, REPLAY_MAX_INPUT);
        return -1;
    }
    /* An exact-size heap copy lets ASan catch reads past the end of the input. */
    uint8_t *copy = malloc(n ? n : 1);
    if (copy == NULL) {
        return -1;
    }
    memcpy(copy, buf, n);
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
    return 0;
}

/* Replays every regular file in dir (not recursive); counts them in *count. */
static int replay_dir(const char *dir, int *count)
{
    char path[4096];
    struct stat st;
    int rc = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        perror(dir);
        return -1;
    }
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        rc |= replay_file(path);
        (*count)++;
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    struct stat st;
    int count = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            rc |= replay_dir(argv[i], &count);
        } else {
            rc |= replay_file(argv[i]);
            count++;
        }
    }
    printf("replayed %d input(s)\n", count);
    return rc == 0 && count > 0 ? 0 : 1;
}
