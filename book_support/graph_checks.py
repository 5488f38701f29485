"""Graph files from outside, checked before anything of them runs.

A .meta file is a whole program: an op in it may write files or start processes the moment
output:0 is run. emotion_test.py restores the book's network from one, so read_meta_graph
parses it and refuses any op an emotion network never uses, and a graph whose output would
run a save op. A frozen Inception graph placed by hand (classify_image.py) is checked the same
way; the published one is known by its checksum. Every
allowlist starts from TENSOR_MATH_OPS, the ops that only compute on tensors. A tensor that
running or restoring the graph would make of over LARGEST_TENSOR values is refused too, from
a constant size or from TensorFlow's shape inference at the largest batch fed.
"""


from book_support import emotion_tta, file_roles, plumbing

LARGEST_META_GRAPH = 100 * 2**20  # an emotion network's .meta is under 1 MB

# Ops that only compute on tensors: no files, processes, network or Python. A graph file from
# outside (a .meta, a frozen .pb) runs only if its ops are these or ones its script names.
TENSOR_MATH_OPS = frozenset("""
    Abs Add AddN AddV2 All Any ArgMax ArgMin AvgPool BatchMatMulV2 BiasAdd BroadcastArgs
    BroadcastGradientArgs BroadcastTo Cast Ceil CheckNumerics Concat ConcatOffset ConcatV2 Const
    Conv2D Cos Cumsum Div DivNoNan DynamicStitch Elu Equal Exp ExpandDims Fill Floor FloorDiv
    FloorMod FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 GatherV2 Greater GreaterEqual
    Identity IdentityN L2Loss LeakyRelu Less LessEqual Log LogSoftmax LogicalAnd LogicalNot
    LogicalOr MatMul Max MaxPool MaxPoolV2 Maximum Mean Merge Min Minimum Mul Neg NoOp NotEqual
    OneHot Pack Pad PadV2 Placeholder PlaceholderWithDefault Pow PreventGradient Prod Range Rank
    RealDiv Reciprocal Relu Relu6 Reshape ResizeBilinear Rsqrt Select SelectV2 Shape ShapeN
    Sigmoid Sign Sin Size Slice Snapshot Softmax SoftmaxCrossEntropyWithLogits
    SparseSoftmaxCrossEntropyWithLogits Split SplitV Sqrt Square SquaredDifference Squeeze
    StopGradient StridedSlice Sub Sum Switch Tanh Tile Transpose Unpack ZerosLike
    """.split())


def op_types(graph_def):
    """Every op type in a GraphDef, the bodies of its functions (a tf.cond's branches) too."""
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types


def refuse_unexpected_ops(graph_def, allowed, path, network):
    """One line instead of running a graph that holds an op `network` never uses (a crafted
    graph file could write files or start processes the moment its output is run), or one that
    would make a tensor larger than any network here needs."""
    unexpected = sorted(op_types(graph_def) - allowed)
    if unexpected:
        raise plumbing.UserError(f"{path} is refused: it holds ops {network} never uses "
                                 f"({', '.join(unexpected[:6])}); only run graph files you trust")
    nodes = {node.name: node for node in graph_def.node}
    huge = next((node.name for node in graph_def.node if elements_made(nodes, node)
                 > LARGEST_TENSOR), None)
    if huge:
        raise plumbing.UserError(f"{path} is refused: its node {huge} would make a tensor of "
                                 f"more than {LARGEST_TENSOR:,} values; only run graph files "
                                 f"you trust")


LARGEST_TENSOR = 2**28  # values: 1 GB of float32, far over any layer of these networks
# The ops that make a tensor whose size a constant input sets, and which input that is.
SIZED_BY = {"Fill": 0, "BroadcastTo": 1, "Tile": 1, "ResizeBilinear": 1, "OneHot": 1}


def elements_made(nodes, node):
    """How many values `node` makes, where a constant input sets it; else 0. `nodes` maps the
    graph's node names to nodes."""
    import numpy as np
    from tensorflow.python.framework import tensor_util

    if node.op not in SIZED_BY or len(node.input) <= SIZED_BY[node.op]:
        return 0
    source = node.input[SIZED_BY[node.op]].lstrip("^").split(":")[0]
    const = nodes.get(source)
    if const is None or const.op != "Const":
        return 0
    try:
        values = tensor_util.MakeNdarray(const.attr["value"].tensor)
    except (TypeError, ValueError):
        return 0
    return int(np.prod(np.abs(values.astype(np.float64)))) if values.size else 0


# What an emotion network, its training and its saver need beyond tensor math: variables of
# both kinds (TF1's in the book's .meta), Adam, random initialisers and dropout, tf.cond,
# --augment's crops, gradients, summaries and the save/restore ops.
EMOTION_OPS = TENSOR_MATH_OPS | frozenset("""
    VariableV2 Assign AssignAdd AssignSub IsVariableInitialized ApplyAdam VarHandleOp
    ReadVariableOp AssignVariableOp AssignAddVariableOp AssignSubVariableOp VarIsInitializedOp
    ResourceApplyAdam RandomUniform RandomStandardNormal TruncatedNormal If StatelessIf
    StatelessRandomGetKeyCounter StatelessRandomUniformV2 MirrorPad CropAndResize OptionalNone
    OptionalFromValue OptionalGetValue
    Conv2DBackpropFilter Conv2DBackpropInput BiasAddGrad MaxPoolGrad ReluGrad
    FusedBatchNormGrad FusedBatchNormGradV3 ScalarSummary HistogramSummary ImageSummary
    MergeSummary SaveV2 RestoreV2 MergeV2Checkpoints ShardedFilename StringJoin
    """.split())
SAVER_WRITES = frozenset({"SaveV2", "MergeV2Checkpoints"})
# The frozen Inception graph's ops beyond tensor math: it decodes the JPEG itself, and
# normalises with the 2015 batch-norm op. A .pb placed by hand that holds anything else is
# refused; the published one (its md5 in inception_files) is not checked, as its full op list
# is not known here.
INCEPTION_OPS = TENSOR_MATH_OPS | {"DecodeJpeg", "BatchNormWithGlobalNormalization"}


def read_meta_graph(path):
    """The MetaGraphDef in `path`, after checking that it holds an emotion network's ops only
    and that running output:0 would not save anything; else one line (UserError)."""
    import tensorflow.compat.v1 as tf
    from google.protobuf.message import DecodeError

    meta_graph = tf.MetaGraphDef()
    try:
        meta_graph.ParseFromString(file_roles.read_bytes(path, LARGEST_META_GRAPH))
    except DecodeError:
        meta_graph.Clear()
    if not meta_graph.graph_def.node:  # an empty file parses, as an empty graph
        raise plumbing.UserError(f"{path} is damaged: it is not a TensorFlow graph")
    refuse_unexpected_ops(meta_graph.graph_def, EMOTION_OPS, path, "an emotion network")
    graph_def = meta_graph.graph_def
    if (SAVER_WRITES & (ops_needed_by(graph_def, "output") | function_ops(graph_def))
            or writes_outside_its_saver(meta_graph)):
        raise plumbing.UserError(f"{path} is refused: running or restoring it would run a save "
                                 f"op; only run graph files you trust")
    variables = [node.name for node in graph_def.node if node.op in VARIABLE_OPS]
    refuse_huge_at_run_time(graph_def, ["output", *variables], path,
                            {"input:0": [LARGEST_BATCH, 48, 48, 1]})
    return meta_graph


VARIABLE_OPS = {"VariableV2", "VarHandleOp"}  # a restore runs these, and their control inputs
LARGEST_BATCH = 2 * emotion_tta.MIRRORED_BATCH  # faces in one run of a network from a file


def refuse_huge_at_run_time(graph_def, fetches, path, inputs=None):
    """One line instead of running `fetches` when a tensor they need would hold more than
    LARGEST_TENSOR values. Sizes come from TensorFlow's shape inference with `inputs` (tensor
    name: the largest shape fed) in place, which also folds sizes computed from constants or
    from the input's shape; a size known only from the values fed is left to the run, where
    TensorFlow's out-of-memory error is one line too (plumbing.out_of_memory)."""
    import tensorflow.compat.v1 as tf

    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.import_graph_def(graph_def, name="", input_map={
                name: tf.placeholder(input_type(graph_def, name), shape)
                for name, shape in (inputs or {}).items()})
        except (ValueError, TypeError, KeyError, tf.errors.OpError):
            return  # not importable as it is: the script's own import says so in one line
    needed = set().union(*(nodes_needed_by(graph_def, name) for name in fetches))
    for name in sorted(needed):
        for tensor in graph.get_operation_by_name(name).outputs:
            if tensor.shape.rank is not None and known_elements(tensor.shape) > LARGEST_TENSOR:
                raise plumbing.UserError(
                    f"{path} is refused: its node {name} would make a tensor of "
                    f"{tensor.shape} (more than {LARGEST_TENSOR:,} values); only run graph "
                    f"files you trust")


def input_type(graph_def, tensor_name):
    """The dtype of placeholder `tensor_name` in `graph_def` (KeyError if there is none)."""
    import tensorflow.compat.v1 as tf

    wanted = tensor_name.split(":")[0]
    node = next((node for node in graph_def.node if node.name == wanted), None)
    if node is None or "dtype" not in node.attr:
        raise KeyError(tensor_name)
    return tf.as_dtype(node.attr["dtype"].type)


def known_elements(shape):
    """The product of the known sizes of `shape`: the fewest values it can hold but none."""
    product = 1
    for size in shape.as_list():
        product *= size if size is not None else 1
    return product


def is_emotion_network(faces, emotions, count, size=48):
    """Whether tensors `faces` and `emotions` are a network's float input of size x size gray
    faces and its float output of `count` emotions (unknown batch sizes allowed)."""
    def fits(tensor, wanted):
        shape = tensor.shape
        return (tensor.dtype.is_floating and shape.rank == len(wanted) and
                all(known is None or known == want for known, want in
                    zip(shape.as_list(), wanted) if want is not None))
    return fits(faces, [None, size, size, 1]) and fits(emotions, [None, count])


def writes_outside_its_saver(meta_graph):
    """Whether a node other than the file's own saver's save path depends on a save op: a
    variable with a control input on one, say, would write files when it is restored."""
    graph_def = meta_graph.graph_def
    writers = {node.name for node in graph_def.node if node.op in SAVER_WRITES}
    if not writers:
        return False
    save_path = nodes_needed_by(graph_def, meta_graph.saver_def.save_tensor_name.split(":")[0])
    dependents, changed = set(writers), True
    while changed:  # every node with a writer among its inputs, all the way down
        changed = False
        for node in graph_def.node:
            if node.name not in dependents and any(
                    given.lstrip("^").split(":")[0] in dependents for given in node.input):
                dependents.add(node.name)
                changed = True
    return not dependents <= save_path


def ops_needed_by(graph_def, name):
    """The op types that running node `name` runs: its inputs and control inputs, all the way
    back."""
    nodes = {node.name: node for node in graph_def.node}
    return {nodes[each].op for each in nodes_needed_by(graph_def, name)}


def nodes_needed_by(graph_def, name):
    """The names of the nodes that running node `name` runs, `name` included."""
    nodes = {node.name: node for node in graph_def.node}
    needed, waiting = set(), [name]
    while waiting:
        current = waiting.pop()
        if current in nodes and current not in needed:
            needed.add(current)
            waiting.extend(given.lstrip("^").split(":")[0] for given in nodes[current].input)
    return needed


def function_ops(graph_def):
    """The op types inside `graph_def`'s functions (a tf.cond's branches)."""
    return {node.op for function in graph_def.library.function
            for node in function.node_def}
