// Load a .heapsnapshot with memlab's parser, find a node by name, print its chain of first retainers.
// Usage: node memlab_check.js FILE NODE_NAME   (NODE_PATH must reach @memlab/heap-analysis)
const {getFullHeapFromFile} = require('@memlab/heap-analysis');
(async () => {
  const heap = await getFullHeapFromFile(process.argv[2]);
  let found = null;
  heap.nodes.forEach(n => { if (n.name === process.argv[3] && !found) found = n; });
  if (!found) { console.log('NOTFOUND'); process.exit(2); }
  let node = found;
  const path = [found.name];
  for (let i = 0; i < 12 && node.referrers.length; i++) {
    const edge = node.referrers[0];
    node = edge.fromNode;
    path.push(`${node.name}[${edge.name_or_index}]`);
  }
  console.log('PATH ' + path.join(' <- '));
})().catch(e => { console.error(e); process.exit(1); });
