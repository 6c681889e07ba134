"""AiiDA-aware tools that read the provenance graph (like aiida-quantumespresso's ``tools``): no process runs
here, nothing is stored; they query nodes, links and attributes."""
