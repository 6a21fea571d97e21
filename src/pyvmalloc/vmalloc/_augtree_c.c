// SPDX-License-Identifier: GPL-2.0-only
/*
 * _augtree_c.c - the compiled twin of _augtree.py: the same AVL tree of disjoint address ranges
 * augmented with subtree_max_size, node for node.
 *
 * _augtree.py is the readable reference; this file follows it function by function, with the
 * same names, and must leave the same tree shape, the same `visited` count, the same answers and
 * the same check() messages after every call (tests/test_augtree_accel.py drives both with the
 * same operations).  augtree.py picks this module where it was built.
 *
 * What the kernel calls (mm/vmalloc.c, 5.2+): a Node is a `vmap_area` in `free_vmap_area_root`
 * (or `vmap_area_root`), lowest_match() is `find_vmap_lowest_match`, propagate() is
 * `augment_tree_propagate_from`, successor() is lib/rbtree.c's `rb_next`.
 *
 * Numbers.  A node's start and end are addresses, ints in [0, 2**64] (list_allocator's
 * check_address domain; the kva space is [page, 2**64 - page)), held as signed 128-bit ints so
 * that 2**64, end - start and the alignment arithmetic of lowest_match() are exact.  The
 * arguments of floor(), neighbours() and lowest_match() may be any int: one beyond +-2**100 acts
 * as +-2**100, which gives the reference's answer for every key and, in lowest_match(), for every
 * non-negative size and length and power-of-two align (all that KvaAllocator passes).
 *
 * References.  Every link is a strong reference: root, left, right and parent, as in the Python
 * objects, so a node a caller keeps never points at freed memory (a deleted node's links are the
 * reference's "garbage": stale but alive).  The trees are reference cycles, which the cyclic GC
 * collects (tp_traverse/tp_clear), as it does the Python trees.  Where a relink could drop the
 * last reference to a node still in use (a leaf in a rotation, the successor in delete()), the
 * function holds its own reference for the duration.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <stdio.h>

#ifndef __SIZEOF_INT128__
#error "the compiled free tree needs __int128; pyvmalloc falls back to the pure-Python _augtree"
#endif

typedef __int128 i128;

#define ADDR_LIMIT ((i128)1 << 64)  /* ULONG_LIMIT: one past ULONG_MAX */
#define ARG_LIMIT ((i128)1 << 100)  /* arguments saturate here; stored values stay below it */

/* ---- ints: Python <-> i128 ----------------------------------------------------------------- */

/* Python int -> i128, saturated to [-ARG_LIMIT, ARG_LIMIT].  0: exact; 1 or -1: saturated from
 * above or below; -2: error set (not an int). */
static int
i128_from_pylong(PyObject *obj, i128 *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "an int is required, not %.100s", Py_TYPE(obj)->tp_name);
        return -2;
    }
    /* addresses (often above 2**63) and sizes: one call */
    unsigned long long u = PyLong_AsUnsignedLongLong(obj);
    if (!(u == (unsigned long long)-1 && PyErr_Occurred())) {
        *out = (i128)u;
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_OverflowError))
        return -2;
    PyErr_Clear();
    int overflow;
    long long s = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (s == -1 && PyErr_Occurred())
        return -2;
    if (!overflow) {  /* negative, at least -2**63 */
        *out = (i128)s;
        return 0;
    }
    /* beyond 64 bits: obj = hi * 2**64 + lo */
    PyObject *sixty_four = PyLong_FromLong(64);
    if (sixty_four == NULL)
        return -2;
    PyObject *hi_obj = PyNumber_Rshift(obj, sixty_four);
    Py_DECREF(sixty_four);
    if (hi_obj == NULL)
        return -2;
    long long hi = PyLong_AsLongLongAndOverflow(hi_obj, &overflow);
    Py_DECREF(hi_obj);
    if (hi == -1 && PyErr_Occurred())
        return -2;
    if (overflow || hi >= ((long long)1 << 36) || hi < -((long long)1 << 36)) {
        *out = overflow > 0 || hi > 0 ? ARG_LIMIT : -ARG_LIMIT;
        return *out > 0 ? 1 : -1;
    }
    unsigned long long lo = PyLong_AsUnsignedLongLongMask(obj);
    if (lo == (unsigned long long)-1 && PyErr_Occurred())
        return -2;
    i128 v = (i128)hi * ADDR_LIMIT + (i128)lo;
    if (v > ARG_LIMIT) {
        *out = ARG_LIMIT;
        return 1;
    }
    if (v < -ARG_LIMIT) {
        *out = -ARG_LIMIT;
        return -1;
    }
    *out = v;
    return 0;
}

/* An argument that may be any int: saturated (see the header). */
static int
arg_i128(PyObject *obj, i128 *out)
{
    return i128_from_pylong(obj, out) == -2 ? -1 : 0;
}

static PyObject *
pylong_from_i128(i128 v)
{
    if (v >= 0 && v <= (i128)UINT64_MAX)
        return PyLong_FromUnsignedLongLong((unsigned long long)v);
    if (v < 0 && v >= (i128)INT64_MIN)
        return PyLong_FromLongLong((long long)v);
    PyObject *hi = PyLong_FromLongLong((long long)(v >> 64));  /* floor, as Python's >> */
    PyObject *lo = PyLong_FromUnsignedLongLong((unsigned long long)v);
    PyObject *sixty_four = PyLong_FromLong(64);
    PyObject *shifted = NULL, *result = NULL;
    if (hi != NULL && lo != NULL && sixty_four != NULL)
        shifted = PyNumber_Lshift(hi, sixty_four);
    if (shifted != NULL)
        result = PyNumber_Add(shifted, lo);
    Py_XDECREF(hi);
    Py_XDECREF(lo);
    Py_XDECREF(sixty_four);
    Py_XDECREF(shifted);
    return result;
}

/* ---- arguments: bind positional and keyword arguments as a Python def does ----------------- */

/* out[i] gets a borrowed reference to argument names[i], or NULL when an optional one (index >=
 * required) was not given. */
static int
bind_args(const char *fname, const char *const *names, int n, int required,
          PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **out)
{
    if (nargs > n) {
        PyErr_Format(PyExc_TypeError, "%s() takes %d positional arguments but %zd were given",
                     fname, n, nargs);
        return -1;
    }
    for (int i = 0; i < n; i++)
        out[i] = i < nargs ? args[i] : NULL;
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            int i = 0;
            while (i < n && PyUnicode_CompareWithASCIIString(key, names[i]) != 0)
                i++;
            if (i == n) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'",
                             fname, key);
                return -1;
            }
            if (out[i] != NULL) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                             fname, names[i]);
                return -1;
            }
            out[i] = args[nargs + k];
        }
    }
    for (int i = 0; i < required; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname,
                         names[i]);
            return -1;
        }
    }
    return 0;
}

/* ---- Node ------------------------------------------------------------------------------------ */

/* One range [start, end): a vmap_area.  The fields of _augtree.Node.__slots__, ordered so that
 * what a descent reads (the links down, max, start) shares the object's first 64-byte line. */
typedef struct Node {
    PyObject_HEAD
    struct Node *left;    /* NULL is None */
    struct Node *right;
    i128 max;             /* subtree_max_size: largest end - start in this subtree */
    i128 start;
    i128 end;
    struct Node *parent;
    PyObject *owner;      /* never NULL: None when unowned */
    long height;
} Node;

static PyTypeObject NodeType;

#define Node_Check(op) PyObject_TypeCheck((op), &NodeType)

/* Point a link at `value` (NULL for None), keeping the reference counts. */
static inline void
set_link(Node **slot, Node *value)
{
    Node *old = *slot;
    Py_XINCREF(value);
    *slot = value;
    Py_XDECREF(old);
}

/* A Node argument, or NULL for None (`*ok` = 0 and TypeError for anything else). */
static Node *
node_or_none(PyObject *obj, const char *what, int *ok)
{
    *ok = 1;
    if (obj == Py_None)
        return NULL;
    if (Node_Check(obj))
        return (Node *)obj;
    PyErr_Format(PyExc_TypeError, "%s must be a Node or None, not %.100s", what,
                 Py_TYPE(obj)->tp_name);
    *ok = 0;
    return NULL;
}

static Node *
node_arg(PyObject *obj, const char *what)
{
    if (Node_Check(obj))
        return (Node *)obj;
    PyErr_Format(PyExc_TypeError, "%s must be a Node, not %.100s", what, Py_TYPE(obj)->tp_name);
    return NULL;
}

static PyObject *
node_or_none_obj(Node *n)
{
    PyObject *obj = n != NULL ? (PyObject *)n : Py_None;
    Py_INCREF(obj);
    return obj;
}

/* Bind the `n` Node arguments `names` of method `fname` (n <= 2); None is accepted, as NULL,
 * where `none_ok` has bit i set for argument i. */
static int
node_args(const char *fname, const char *const *names, int n, int none_ok,
          PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, Node **out)
{
    PyObject *a[2];
    if (bind_args(fname, names, n, n, args, nargs, kwnames, a) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        int ok = 1;
        out[i] = none_ok & (1 << i) ? node_or_none(a[i], names[i], &ok) : node_arg(a[i], names[i]);
        if (!ok || (out[i] == NULL && !(none_ok & (1 << i))))
            return -1;
    }
    return 0;
}

/* An address field: an int in [0, 2**64]. */
static int
addr_from_pylong(PyObject *value, const char *field, i128 *out)
{
    int r = i128_from_pylong(value, out);
    if (r == -2)
        return -1;
    if (r != 0 || *out < 0 || *out > ADDR_LIMIT) {
        PyErr_Format(PyExc_OverflowError, "Node.%s must be an int in [0, 2**64], not %R", field,
                     value);
        return -1;
    }
    return 0;
}

static PyObject *
Node_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Node *self = (Node *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(Py_None);
    self->owner = Py_None;
    self->height = 1;
    return (PyObject *)self;
}

static int
Node_init(Node *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"start", "end", "owner", NULL};
    PyObject *start_obj, *end_obj, *owner = Py_None;
    i128 start, end;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:Node", kwlist, &start_obj, &end_obj,
                                     &owner))
        return -1;
    if (addr_from_pylong(start_obj, "start", &start) < 0
        || addr_from_pylong(end_obj, "end", &end) < 0)
        return -1;
    self->start = start;
    self->end = end;
    Py_INCREF(owner);
    Py_SETREF(self->owner, owner);
    set_link(&self->left, NULL);
    set_link(&self->right, NULL);
    set_link(&self->parent, NULL);
    self->height = 1;
    self->max = end - start;
    return 0;
}

static int
Node_traverse(Node *self, visitproc visit, void *arg)
{
    Py_VISIT(self->owner);
    Py_VISIT(self->left);
    Py_VISIT(self->right);
    Py_VISIT(self->parent);
    return 0;
}

/* Break the node's references for the cyclic GC; the owner becomes None, so a node a
 * finalizer still reaches reads as a node without links. */
static int
Node_clear(Node *self)
{
    Py_CLEAR(self->left);
    Py_CLEAR(self->right);
    Py_CLEAR(self->parent);
    Py_XSETREF(self->owner, Py_NewRef(Py_None));
    return 0;
}

static void
Node_dealloc(Node *self)
{
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, Node_dealloc)
    Node_clear(self);
    Py_CLEAR(self->owner);
    Py_TYPE(self)->tp_free((PyObject *)self);
    Py_TRASHCAN_END
}

/* Node(0x1000, 0x3000): the reference's f"Node({start:#x}, {end:#x})". */
static void
format_hex(char *buf, size_t size, i128 v)
{
    if (v < 0)  /* not an address; kept for completeness */
        snprintf(buf, size, "-0x%llx", (unsigned long long)-v);
    else if (v == ADDR_LIMIT)
        snprintf(buf, size, "0x10000000000000000");
    else
        snprintf(buf, size, "0x%llx", (unsigned long long)v);
}

static PyObject *
Node_repr(Node *self)
{
    char start[24], end[24];
    format_hex(start, sizeof start, self->start);
    format_hex(end, sizeof end, self->end);
    return PyUnicode_FromFormat("Node(%s, %s)", start, end);
}

/* Refuse `del node.field`, which the reference's slots would allow and then fail on. */
static int
no_delete(PyObject *value, const char *field)
{
    if (value != NULL)
        return 0;
    PyErr_Format(PyExc_TypeError, "cannot delete Node.%s", field);
    return -1;
}

/* start, end and max: the closure is the field's offset in Node. */
#define I128_FIELD(self, closure) ((i128 *)((char *)(self) + (size_t)(closure)))

static PyObject *
Node_get_int(Node *self, void *closure)
{
    return pylong_from_i128(*I128_FIELD(self, closure));
}

static int
Node_set_addr(Node *self, PyObject *value, void *closure)
{
    const char *field = (size_t)closure == offsetof(Node, start) ? "start" : "end";
    if (no_delete(value, field) < 0)
        return -1;
    return addr_from_pylong(value, field, I128_FIELD(self, closure));
}

static int
Node_set_max(Node *self, PyObject *value, void *closure)
{
    i128 v;
    if (no_delete(value, "max") < 0)
        return -1;
    int r = i128_from_pylong(value, &v);
    if (r == -2)
        return -1;
    if (r != 0 || v == ARG_LIMIT || v == -ARG_LIMIT) {
        PyErr_Format(PyExc_OverflowError, "Node.max must be an int in (-2**100, 2**100), not %R",
                     value);
        return -1;
    }
    self->max = v;
    return 0;
}

static PyObject *
Node_get_owner(Node *self, void *closure)
{
    Py_INCREF(self->owner);
    return self->owner;
}

static int
Node_set_owner(Node *self, PyObject *value, void *closure)
{
    if (no_delete(value, "owner") < 0)
        return -1;
    Py_INCREF(value);
    Py_SETREF(self->owner, value);
    return 0;
}

/* left, right and parent: the closure is the link's offset in Node. */
static PyObject *
Node_get_link(Node *self, void *closure)
{
    return node_or_none_obj(*(Node **)((char *)self + (size_t)closure));
}

static int
Node_set_link(Node *self, PyObject *value, void *closure)
{
    int ok;
    if (no_delete(value, "left, right or parent") < 0)
        return -1;
    Node *n = node_or_none(value, "a Node link", &ok);
    if (!ok)
        return -1;
    set_link((Node **)((char *)self + (size_t)closure), n);
    return 0;
}

static PyObject *
Node_reduce(Node *self, PyObject *Py_UNUSED(ignored))
{
    /* (type, (start, end, owner), (left, right, parent, height, max)): copy and pickle */
    PyObject *start = pylong_from_i128(self->start);
    PyObject *end = pylong_from_i128(self->end);
    PyObject *max = pylong_from_i128(self->max);
    PyObject *result = NULL;
    if (start != NULL && end != NULL && max != NULL)
        result = Py_BuildValue("O(OOO)(OOOlO)", (PyObject *)Py_TYPE(self), start, end,
                               self->owner,
                               self->left ? (PyObject *)self->left : Py_None,
                               self->right ? (PyObject *)self->right : Py_None,
                               self->parent ? (PyObject *)self->parent : Py_None,
                               self->height, max);
    Py_XDECREF(start);
    Py_XDECREF(end);
    Py_XDECREF(max);
    return result;
}

static PyObject *
Node_setstate(Node *self, PyObject *state)
{
    PyObject *left, *right, *parent, *max;
    long height;
    if (!PyArg_ParseTuple(state, "OOOlO:__setstate__", &left, &right, &parent, &height, &max))
        return NULL;
    if (Node_set_link(self, left, (void *)offsetof(Node, left)) < 0
        || Node_set_link(self, right, (void *)offsetof(Node, right)) < 0
        || Node_set_link(self, parent, (void *)offsetof(Node, parent)) < 0
        || Node_set_max(self, max, NULL) < 0)
        return NULL;
    self->height = height;
    Py_RETURN_NONE;
}

static PyGetSetDef Node_getset[] = {
    {"start", (getter)Node_get_int, (setter)Node_set_addr, "first address",
     (void *)offsetof(Node, start)},
    {"end", (getter)Node_get_int, (setter)Node_set_addr, "one past the last address",
     (void *)offsetof(Node, end)},
    {"owner", (getter)Node_get_owner, (setter)Node_set_owner, "what the range belongs to", NULL},
    {"left", (getter)Node_get_link, (setter)Node_set_link, "left child",
     (void *)offsetof(Node, left)},
    {"right", (getter)Node_get_link, (setter)Node_set_link, "right child",
     (void *)offsetof(Node, right)},
    {"parent", (getter)Node_get_link, (setter)Node_set_link, "parent",
     (void *)offsetof(Node, parent)},
    {"max", (getter)Node_get_int, (setter)Node_set_max,
     "subtree_max_size: largest end - start in this subtree", (void *)offsetof(Node, max)},
    {NULL},
};

static PyMemberDef Node_members[] = {
    {"height", T_LONG, offsetof(Node, height), 0, "AVL height (a leaf is 1)"},
    {NULL},
};

static PyMethodDef Node_methods[] = {
    {"__reduce__", (PyCFunction)Node_reduce, METH_NOARGS, NULL},
    {"__setstate__", (PyCFunction)Node_setstate, METH_O, NULL},
    {NULL},
};

static PyTypeObject NodeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyvmalloc.vmalloc._augtree_c.Node",
    .tp_doc = PyDoc_STR("One range ``[start, end)``: a ``vmap_area``."),
    .tp_basicsize = sizeof(Node),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = Node_new,
    .tp_init = (initproc)Node_init,
    .tp_dealloc = (destructor)Node_dealloc,
    .tp_traverse = (traverseproc)Node_traverse,
    .tp_clear = (inquiry)Node_clear,
    .tp_repr = (reprfunc)Node_repr,
    .tp_getset = Node_getset,
    .tp_members = Node_members,
    .tp_methods = Node_methods,
};

/* successor(): the next node in address order (rb_next). */
static Node *
successor(Node *n)
{
    Node *r = n->right;
    if (r != NULL) {
        while (r->left != NULL)
            r = r->left;
        return r;
    }
    Node *p = n->parent;
    while (p != NULL && n == p->right) {
        n = p;
        p = p->parent;
    }
    return p;
}

static PyObject *
successor_py(PyObject *module, PyObject *arg)
{
    Node *n = node_arg(arg, "successor() argument");
    return n == NULL ? NULL : node_or_none_obj(successor(n));
}

/* _make_leaf() */
static void
make_leaf(Node *node)
{
    set_link(&node->left, NULL);
    set_link(&node->right, NULL);
    node->height = 1;
    node->max = node->end - node->start;
}

/* ---- iter_from(): the generator `while n is not None: yield n; n = successor(n)` ------------ */

typedef struct {
    PyObject_HEAD
    Node *n;      /* the node yielded last, or the first one to yield */
    int started;  /* the generator steps to the successor only when resumed */
} NodeIter;

static int
NodeIter_traverse(NodeIter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->n);
    return 0;
}

static void
NodeIter_dealloc(NodeIter *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->n);
    PyObject_GC_Del(self);
}

static PyObject *
NodeIter_next(NodeIter *self)
{
    if (self->n != NULL && self->started)
        set_link(&self->n, successor(self->n));
    self->started = 1;
    if (self->n == NULL)
        return NULL;
    Py_INCREF(self->n);
    return (PyObject *)self->n;
}

static PyTypeObject NodeIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyvmalloc.vmalloc._augtree_c.NodeIterator",
    .tp_doc = PyDoc_STR("A node and every node after it, in address order."),
    .tp_basicsize = sizeof(NodeIter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)NodeIter_dealloc,
    .tp_traverse = (traverseproc)NodeIter_traverse,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)NodeIter_next,
};

/* ---- AugTree ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Node *root;
    int augment;          /* keep max (the free tree); the busy tree leaves it stale */
    long long visited;    /* work counter: nodes lowest_match() has looked at */
} AugTree;

static int
AugTree_init(AugTree *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"augment", NULL};
    PyObject *augment;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:AugTree", kwlist, &augment))
        return -1;
    int flag = PyObject_IsTrue(augment);
    if (flag < 0)
        return -1;
    set_link(&self->root, NULL);
    self->augment = flag;
    self->visited = 0;
    return 0;
}

static int
AugTree_traverse(AugTree *self, visitproc visit, void *arg)
{
    Py_VISIT(self->root);
    return 0;
}

static int
AugTree_clear(AugTree *self)
{
    Py_CLEAR(self->root);
    return 0;
}

static void
AugTree_dealloc(AugTree *self)
{
    PyObject_GC_UnTrack(self);
    AugTree_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* -- queries -- */

static PyObject *
AugTree_first(AugTree *self, PyObject *Py_UNUSED(ignored))
{
    Node *n = self->root;
    if (n != NULL)
        while (n->left != NULL)
            n = n->left;
    return node_or_none_obj(n);
}

static PyObject *
AugTree_floor(AugTree *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"key"};
    PyObject *a[1];
    i128 key;
    if (bind_args("floor", names, 1, 1, args, nargs, kwnames, a) < 0 || arg_i128(a[0], &key) < 0)
        return NULL;
    Node *n = self->root, *best = NULL;
    while (n != NULL) {
        if (key < n->start) {
            n = n->left;
        } else {
            best = n;
            if (key == n->start)
                break;
            n = n->right;
        }
    }
    return node_or_none_obj(best);
}

/* (floor, ceiling) of a key that starts no node: find_va_links plus the list sibling in
 * __merge_or_add_vmap_area. */
static PyObject *
AugTree_neighbours(AugTree *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"key"};
    PyObject *a[1];
    i128 key;
    if (bind_args("neighbours", names, 1, 1, args, nargs, kwnames, a) < 0
        || arg_i128(a[0], &key) < 0)
        return NULL;
    Node *n = self->root, *prev = NULL, *next = NULL;
    while (n != NULL) {
        if (key < n->start) {
            next = n;
            n = n->left;
        } else {
            prev = n;
            n = n->right;
        }
    }
    return PyTuple_Pack(2, prev ? (PyObject *)prev : Py_None, next ? (PyObject *)next : Py_None);
}

static PyObject *
AugTree_iter_from(AugTree *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"n"};
    Node *n;
    if (node_args("iter_from", names, 1, 1, args, nargs, kwnames, &n) < 0)
        return NULL;
    NodeIter *it = PyObject_GC_New(NodeIter, &NodeIterType);
    if (it == NULL)
        return NULL;
    Py_XINCREF(n);
    it->n = n;
    it->started = 0;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

/* The lowest node of at least `length` in which an `align`-aligned `size` fits at or after
 * `vstart`: mm/vmalloc.c 5.2+ find_vmap_lowest_match, with the reference's two deliberate
 * differences (a node is tried only if it is itself `length` long; the climb skips ancestors
 * entered from the right).  Counts every node looked at in `visited`, as the reference does. */
static Node *
lowest_match(AugTree *self, i128 size, i128 align, i128 vstart, i128 length)
{
    i128 mask = align - 1;
    long long visited = self->visited;
    Node *n = self->root, *found = NULL;
    while (n != NULL) {
        visited++;
        Node *left = n->left;
        if (left != NULL && left->max >= length && vstart < n->start) {
            n = left;
            continue;
        }
        for (;;) {
            /* is_within_this_va(), for a node long enough */
            visited++;
            i128 s = n->start;
            if (n->end - s >= length) {
                if (s < vstart)
                    s = vstart;
                if (((s + mask) & ~mask) + size <= n->end) {
                    found = n;
                    goto out;
                }
            }
            Node *right = n->right;
            if (right != NULL && right->max >= length) {
                n = right;
                break;
            }
            /* climb to the first ancestor whose left subtree we came from */
            Node *child = n;
            n = n->parent;
            while (n != NULL && child == n->right) {
                visited++;
                child = n;
                n = n->parent;
            }
            if (n == NULL)
                goto out;
        }
    }
out:
    self->visited = visited;
    return found;
}

static PyObject *
AugTree_lowest_match(AugTree *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"size", "align", "vstart", "length"};
    PyObject *a[4];
    i128 size, align, vstart, length;
    if (bind_args("lowest_match", names, 4, 4, args, nargs, kwnames, a) < 0
        || arg_i128(a[0], &size) < 0 || arg_i128(a[1], &align) < 0
        || arg_i128(a[2], &vstart) < 0 || arg_i128(a[3], &length) < 0)
        return NULL;
    return node_or_none_obj(lowest_match(self, size, align, vstart, length));
}

/* -- AVL machinery -- */

/* _replace(): put `new` where `old` hangs from its parent. */
static void
tree_replace(AugTree *self, Node *old, Node *new)
{
    Node *p = old->parent;
    Py_INCREF(old);  /* the parent's link may be the last reference */
    if (new != NULL)
        set_link(&new->parent, p);
    if (p == NULL)
        set_link(&self->root, new);
    else if (p->left == old)
        set_link(&p->left, new);
    else
        set_link(&p->right, new);
    Py_DECREF(old);
}

/* _fix(): height, and max when augmented, from the children. */
static void
tree_fix(AugTree *self, Node *n)
{
    Node *left = n->left, *right = n->right;
    long hl = left != NULL ? left->height : 0;
    long hr = right != NULL ? right->height : 0;
    n->height = (hl > hr ? hl : hr) + 1;
    if (self->augment) {
        i128 m = n->end - n->start;
        if (left != NULL && left->max > m)
            m = left->max;
        if (right != NULL && right->max > m)
            m = right->max;
        n->max = m;
    }
}

/* _rotate(): child `up` of `x` comes into x's place; x becomes its child. */
static Node *
tree_rotate(AugTree *self, Node *x, Node *up)
{
    Node *b;
    Py_INCREF(x);
    Py_INCREF(up);
    if (up == x->right) {
        b = up->left;
        set_link(&x->right, b);
        set_link(&up->left, x);
    } else {
        b = up->right;
        set_link(&x->left, b);
        set_link(&up->right, x);
    }
    if (b != NULL)
        set_link(&b->parent, x);
    tree_replace(self, x, up);
    set_link(&x->parent, up);
    tree_fix(self, x);
    tree_fix(self, up);
    Py_DECREF(x);
    Py_DECREF(up);
    return up;
}

/* _retrace(): rebalance and re-augment from n up to (not including) stop; stop early once a
 * subtree's height and max are what its parent already saw. */
static void
tree_retrace(AugTree *self, Node *n, Node *stop)
{
    while (n != NULL && n != stop) {
        long old_h = n->height;
        i128 old_m = n->max;
        Node *left = n->left, *right = n->right;
        long hl = left != NULL ? left->height : 0;
        long hr = right != NULL ? right->height : 0;
        if (hl > hr + 1 || hr > hl + 1) {
            /* the taller child comes up; if its inner grandchild is the taller one, that
             * grandchild comes up first (the double rotation) */
            Node *heavy = hl > hr ? left : right;
            Node *inner, *outer;
            if (heavy == left) {
                inner = heavy->right;
                outer = heavy->left;
            } else {
                inner = heavy->left;
                outer = heavy->right;
            }
            if (inner != NULL && inner->height > (outer != NULL ? outer->height : 0))
                heavy = tree_rotate(self, heavy, inner);
            n = tree_rotate(self, n, heavy);
        } else {
            tree_fix(self, n);
        }
        if (n->height == old_h && n->max == old_m)
            return;
        n = n->parent;
    }
}

/* -- updates -- */

/* insert(): link `node` (not in any tree) at its place by start. */
static void
tree_insert(AugTree *self, Node *node)
{
    make_leaf(node);
    Node *p = self->root;
    if (p == NULL) {
        set_link(&node->parent, NULL);
        set_link(&self->root, node);
        return;
    }
    i128 key = node->start;
    for (;;) {
        if (key < p->start) {
            if (p->left == NULL) {
                set_link(&p->left, node);
                break;
            }
            p = p->left;
        } else {
            if (p->right == NULL) {
                set_link(&p->right, node);
                break;
            }
            p = p->right;
        }
    }
    set_link(&node->parent, p);
    tree_retrace(self, p, NULL);
}

/* insert_before(): link `node` as the in-order predecessor of `succ` without comparing keys
 * (insert_vmap_area_augment(lva, &va->rb_node, ...) starts the search at va). */
static void
tree_insert_before(AugTree *self, Node *node, Node *succ)
{
    make_leaf(node);
    Node *p = succ->left;
    if (p == NULL) {
        set_link(&succ->left, node);
        p = succ;
    } else {
        while (p->right != NULL)
            p = p->right;
        set_link(&p->right, node);
    }
    set_link(&node->parent, p);
    tree_retrace(self, p, NULL);
}

/* delete(): unlink z; its fields other than start/end/owner are garbage afterwards. */
static void
tree_delete(AugTree *self, Node *z)
{
    Node *left = z->left, *right = z->right;
    Py_INCREF(z);
    if (left == NULL || right == NULL) {
        Node *child = left != NULL ? left : right;
        Node *p = z->parent;
        tree_replace(self, z, child);
        if (p != NULL)
            tree_retrace(self, p, NULL);
        Py_DECREF(z);
        return;
    }
    /* Two children: the successor y takes z's place. */
    Node *y = right;
    while (y->left != NULL)
        y = y->left;
    Py_INCREF(y);  /* unhooked for a moment below */
    Node *low;
    if (y->parent == z) {
        low = NULL;
    } else {
        low = y->parent;
        tree_replace(self, y, y->right);
        set_link(&y->right, right);
        set_link(&right->parent, y);
    }
    tree_replace(self, z, y);
    set_link(&y->left, left);
    set_link(&left->parent, y);
    /* What z's ancestors last saw; the retrace compares against it to stop early. */
    y->height = z->height;
    y->max = z->max;
    if (low != NULL)
        tree_retrace(self, low, y);  /* the nodes between y's old place and its new one */
    tree_retrace(self, y, NULL);
    Py_DECREF(y);
    Py_DECREF(z);
}

/* propagate(): recompute max from n upwards after its size changed
 * (augment_tree_propagate_from); stops where nothing changes. */
static void
tree_propagate(Node *n)
{
    while (n != NULL) {
        i128 m = n->end - n->start;
        Node *c = n->left;
        if (c != NULL && c->max > m)
            m = c->max;
        c = n->right;
        if (c != NULL && c->max > m)
            m = c->max;
        if (m == n->max)
            return;
        n->max = m;
        n = n->parent;
    }
}

/* A method of AugTree whose arguments are nodes: bind them, check their types, do `call`. */
#define NODE_METHOD(pyname, fname, arg0, arg1, nargs_, none_ok, call)                          \
    static PyObject *fname(AugTree *self, PyObject *const *args, Py_ssize_t nargs,            \
                           PyObject *kwnames)                                                 \
    {                                                                                         \
        static const char *const names[] = {arg0, arg1};                                      \
        Node *a[2] = {NULL, NULL};                                                            \
        if (node_args(pyname, names, nargs_, none_ok, args, nargs, kwnames, a) < 0)           \
            return NULL;                                                                      \
        call;                                                                                 \
        Py_RETURN_NONE;                                                                       \
    }

NODE_METHOD("insert", AugTree_insert, "node", NULL, 1, 0, tree_insert(self, a[0]))
NODE_METHOD("insert_before", AugTree_insert_before, "node", "succ", 2, 0,
            tree_insert_before(self, a[0], a[1]))
NODE_METHOD("delete", AugTree_delete, "z", NULL, 1, 0, tree_delete(self, a[0]))
NODE_METHOD("propagate", AugTree_propagate, "n", NULL, 1, 1, tree_propagate(a[0]))
NODE_METHOD("_replace", AugTree_replace_py, "old", "new", 2, 2, tree_replace(self, a[0], a[1]))
NODE_METHOD("_fix", AugTree_fix_py, "n", NULL, 1, 0, tree_fix(self, a[0]))
NODE_METHOD("_retrace", AugTree_retrace_py, "n", "stop", 2, 3, tree_retrace(self, a[0], a[1]))

static PyObject *
AugTree_rotate_py(AugTree *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"x", "up"};
    Node *a[2];
    if (node_args("_rotate", names, 2, 0, args, nargs, kwnames, a) < 0)
        return NULL;
    return node_or_none_obj(tree_rotate(self, a[0], a[1]));
}

/* -- checking -- */

/* Raise pyvmalloc.errors.Inconsistency(message); imported on first use, as the errors layer
 * sits below this module and must not be imported at load time by C. */
static PyObject *
raise_inconsistency(PyObject *message)
{
    static PyObject *inconsistency = NULL;
    if (message == NULL)
        return NULL;
    if (inconsistency == NULL) {
        PyObject *errors = PyImport_ImportModule("pyvmalloc.errors");
        if (errors != NULL) {
            inconsistency = PyObject_GetAttrString(errors, "Inconsistency");
            Py_DECREF(errors);
        }
        if (inconsistency == NULL) {
            Py_DECREF(message);
            return NULL;
        }
    }
    PyErr_SetObject(inconsistency, message);
    Py_DECREF(message);
    return NULL;
}

/* A field as a Python int for a message (NULL on error). */
#define PYINT(v) pylong_from_i128(v)

static PyObject *
check_node(AugTree *self, PyObject *what, Node *node, int has_last, i128 last_end)
{
    if (node->end <= node->start)
        return raise_inconsistency(
            PyUnicode_FromFormat("%S: empty range %R", what, (PyObject *)node));
    if (has_last && node->start < last_end)
        return raise_inconsistency(
            PyUnicode_FromFormat("%S: %R overlaps or is out of order", what, (PyObject *)node));
    Node *kids[2] = {node->left, node->right};
    for (int i = 0; i < 2; i++) {
        if (kids[i] != NULL && kids[i]->parent != node)
            return raise_inconsistency(PyUnicode_FromFormat(
                "%S: broken parent link below %R", what, (PyObject *)node));
    }
    long hl = node->left != NULL ? node->left->height : 0;
    long hr = node->right != NULL ? node->right->height : 0;
    if (node->height != (hl > hr ? hl : hr) + 1 || hl - hr > 1 || hr - hl > 1)
        return raise_inconsistency(PyUnicode_FromFormat(
            "%S: %R height %ld vs %ld/%ld", what, (PyObject *)node, node->height, hl, hr));
    if (self->augment) {
        i128 m = node->end - node->start;
        i128 ml = node->left != NULL ? node->left->max : 0;
        i128 mr = node->right != NULL ? node->right->max : 0;
        if (ml > m)
            m = ml;
        if (mr > m)
            m = mr;
        if (node->max != m) {
            PyObject *have = PYINT(node->max), *want = PYINT(m), *msg = NULL;
            if (have != NULL && want != NULL)
                msg = PyUnicode_FromFormat("%S: %R subtree_max_size %S != %S", what,
                                           (PyObject *)node, have, want);
            Py_XDECREF(have);
            Py_XDECREF(want);
            return raise_inconsistency(msg);
        }
    }
    Py_RETURN_NONE;
}

/* check(what): raise Inconsistency unless links, order, balance and max hold; the node count.
 * The nodes are checked in address order, found by an in-order walk with an explicit stack
 * (the parent links are under test). */
static PyObject *
AugTree_check(AugTree *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"what"};
    PyObject *a[1];
    if (bind_args("check", names, 1, 1, args, nargs, kwnames, a) < 0)
        return NULL;
    PyObject *what = a[0];
    if (self->root != NULL && self->root->parent != NULL)
        return raise_inconsistency(PyUnicode_FromFormat("%S: the root has a parent", what));
    Py_ssize_t cap = 64, depth = 0, count = 0;
    Node **stack = PyMem_New(Node *, cap);
    if (stack == NULL)
        return PyErr_NoMemory();
    Node *n = self->root;
    int has_last = 0;
    i128 last_end = 0;
    PyObject *result = NULL;
    while (depth > 0 || n != NULL) {
        while (n != NULL) {
            if (depth == cap) {
                cap *= 2;
                Node **bigger = PyMem_Resize(stack, Node *, cap);
                if (bigger == NULL) {
                    PyErr_NoMemory();
                    goto done;
                }
                stack = bigger;
            }
            stack[depth++] = n;
            n = n->left;
        }
        n = stack[--depth];
        PyObject *ok = check_node(self, what, n, has_last, last_end);
        if (ok == NULL)
            goto done;
        Py_DECREF(ok);
        has_last = 1;
        last_end = n->end;
        count++;
        n = n->right;
    }
    result = PyLong_FromSsize_t(count);
done:
    PyMem_Free(stack);
    return result;
}

static PyObject *
AugTree_height(AugTree *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(self->root != NULL ? self->root->height : 0);
}

static PyObject *
AugTree_reduce(AugTree *self, PyObject *Py_UNUSED(ignored))
{
    /* (type, (augment,), (root, visited)): copy and pickle */
    return Py_BuildValue("O(O)(OL)", (PyObject *)Py_TYPE(self),
                         self->augment ? Py_True : Py_False,
                         self->root ? (PyObject *)self->root : Py_None, self->visited);
}

static PyObject *
AugTree_setstate(AugTree *self, PyObject *state)
{
    PyObject *root;
    long long visited;
    int ok;
    if (!PyArg_ParseTuple(state, "OL:__setstate__", &root, &visited))
        return NULL;
    Node *n = node_or_none(root, "root", &ok);
    if (!ok)
        return NULL;
    set_link(&self->root, n);
    self->visited = visited;
    Py_RETURN_NONE;
}

static PyObject *
AugTree_get_root(AugTree *self, void *closure)
{
    return node_or_none_obj(self->root);
}

static int
AugTree_set_root(AugTree *self, PyObject *value, void *closure)
{
    int ok;
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "cannot delete AugTree.root");
        return -1;
    }
    Node *n = node_or_none(value, "AugTree.root", &ok);
    if (!ok)
        return -1;
    set_link(&self->root, n);
    return 0;
}

static PyObject *
AugTree_get_augment(AugTree *self, void *closure)
{
    return PyBool_FromLong(self->augment);
}

static int
AugTree_set_augment(AugTree *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "cannot delete AugTree.augment");
        return -1;
    }
    int flag = PyObject_IsTrue(value);
    if (flag < 0)
        return -1;
    self->augment = flag;
    return 0;
}

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)

static PyMethodDef AugTree_methods[] = {
    {"first", (PyCFunction)AugTree_first, METH_NOARGS, "The lowest node."},
    {"floor", (PyCFunction)(void (*)(void))AugTree_floor, FASTKW,
     "The node with the largest ``start <= key``."},
    {"neighbours", (PyCFunction)(void (*)(void))AugTree_neighbours, FASTKW,
     "``(floor, ceiling)`` of a ``key`` that starts no node."},
    {"iter_from", (PyCFunction)(void (*)(void))AugTree_iter_from, FASTKW,
     "``n`` and every node after it, in address order."},
    {"lowest_match", (PyCFunction)(void (*)(void))AugTree_lowest_match, FASTKW,
     "The lowest node of at least ``length`` in which an ``align``-aligned ``size`` fits at or "
     "after ``vstart`` (find_vmap_lowest_match)."},
    {"insert", (PyCFunction)(void (*)(void))AugTree_insert, FASTKW,
     "Link ``node`` (not in any tree) at its place by ``start``."},
    {"insert_before", (PyCFunction)(void (*)(void))AugTree_insert_before, FASTKW,
     "Link ``node`` as the in-order predecessor of ``succ`` without comparing keys."},
    {"delete", (PyCFunction)(void (*)(void))AugTree_delete, FASTKW,
     "Unlink ``z``; its fields other than start/end/owner are garbage afterwards."},
    {"propagate", (PyCFunction)(void (*)(void))AugTree_propagate, FASTKW,
     "Recompute ``max`` from ``n`` upwards (augment_tree_propagate_from)."},
    {"_replace", (PyCFunction)(void (*)(void))AugTree_replace_py, FASTKW,
     "Put ``new`` where ``old`` hangs from its parent."},
    {"_fix", (PyCFunction)(void (*)(void))AugTree_fix_py, FASTKW,
     "Height, and max when augmented, from the children."},
    {"_rotate", (PyCFunction)(void (*)(void))AugTree_rotate_py, FASTKW,
     "Rotate child ``up`` of ``x`` into ``x``'s place; ``x`` becomes its child."},
    {"_retrace", (PyCFunction)(void (*)(void))AugTree_retrace_py, FASTKW,
     "Rebalance and re-augment from ``n`` up to (not including) ``stop``."},
    {"check", (PyCFunction)(void (*)(void))AugTree_check, FASTKW,
     "Raise Inconsistency unless links, order, balance and ``max`` hold; the node count."},
    {"height", (PyCFunction)AugTree_height, METH_NOARGS, "Height of the tree (0 when empty)."},
    {"__reduce__", (PyCFunction)AugTree_reduce, METH_NOARGS, NULL},
    {"__setstate__", (PyCFunction)AugTree_setstate, METH_O, NULL},
    {NULL},
};

static PyGetSetDef AugTree_getset[] = {
    {"root", (getter)AugTree_get_root, (setter)AugTree_set_root, "the root node or None", NULL},
    {"augment", (getter)AugTree_get_augment, (setter)AugTree_set_augment,
     "whether each node keeps max", NULL},
    {NULL},
};

static PyMemberDef AugTree_members[] = {
    {"visited", T_LONGLONG, offsetof(AugTree, visited), 0,
     "work counter: nodes lowest_match() has looked at"},
    {NULL},
};

static PyTypeObject AugTreeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyvmalloc.vmalloc._augtree_c.AugTree",
    .tp_doc = PyDoc_STR("Disjoint ranges keyed by ``start``; with ``augment`` each node keeps "
                        "``max``."),
    .tp_basicsize = sizeof(AugTree),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)AugTree_init,
    .tp_dealloc = (destructor)AugTree_dealloc,
    .tp_traverse = (traverseproc)AugTree_traverse,
    .tp_clear = (inquiry)AugTree_clear,
    .tp_methods = AugTree_methods,
    .tp_getset = AugTree_getset,
    .tp_members = AugTree_members,
};

/* ---- the module ---------------------------------------------------------------------------- */

static PyMethodDef module_methods[] = {
    {"successor", (PyCFunction)successor_py, METH_O,
     "The next node in address order (``rb_next``)."},
    {NULL},
};

static struct PyModuleDef augtree_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyvmalloc.vmalloc._augtree_c",
    .m_doc = "The compiled twin of _augtree.py: the kva allocator's augmented AVL tree.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__augtree_c(void)
{
    if (PyType_Ready(&NodeType) < 0 || PyType_Ready(&NodeIterType) < 0
        || PyType_Ready(&AugTreeType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&augtree_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Node", (PyObject *)&NodeType) < 0
        || PyModule_AddObjectRef(m, "AugTree", (PyObject *)&AugTreeType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
