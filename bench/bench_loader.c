/* Placeholder: being written (bench/e2e.sh). */
int main(void)
{
    return 0;
}
