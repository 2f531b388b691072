export * from '../../scripts/lib/sample-data';
