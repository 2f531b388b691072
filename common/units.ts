// Sizes for people.
export const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
